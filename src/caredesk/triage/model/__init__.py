"""Models: vectorised text features, trained models and their bundle file, the classifier, the result columns. Pure."""
