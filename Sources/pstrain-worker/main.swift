import PSRank
RankMain.main(role: .worker)
