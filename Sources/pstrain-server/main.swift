import PSRank
RankMain.main(role: .server)
