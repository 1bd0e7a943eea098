/// PyTorch's names for the settings pstrain names otherwise: a user who
/// writes `learning_rate` or `out_features` is told the name here.
public enum PyTorchNames {
    /// PyTorch's (or a common trainer's) name -> pstrain's key name.
    public static let ours: [String: String] = [
        "learning_rate": "lr", "max_lr": "lr", "num_epochs": "epochs", "max_epochs": "epochs", "n_epochs": "epochs",
        "batch": "batch_size", "betas": "beta1", "num_classes": "classes", "n_classes": "classes",
        "out_features": "units", "kernel_size": "kernel", "out_channels": "channels",
        "num_embeddings": "rows", "embedding_dim": "dim", "dropout": "p", "max_grad_norm": "clip_norm", "clip_grad_norm": "clip_norm",
    ]

    /// "; PyTorch's out_features is 'units' here" when `name` is one of PyTorch's and `known` holds ours.
    public static func hint(for name: String, known: [String]) -> String? {
        guard let mine = ours[name], known.contains(mine) else { return nil }
        return "PyTorch's \(name) is '\(mine)' here"
    }
}
