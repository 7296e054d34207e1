"""The seed paper's residual contrastive autoencoder (pure torch; import the submodules)."""
