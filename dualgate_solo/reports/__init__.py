"""What the paper reports, for any checkpoint: cost report, channel usage, UMAP of both branches."""
