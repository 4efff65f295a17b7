"""`contra-bc build-dataset` and the training loader (see docs/formats.md).

    contra_bc.dataset.build    recordings + annotations -> dataset shards
    contra_bc.dataset.quality  the episode quality filter
    contra_bc.dataset.loader   DatasetReader, WindowDataset, make_loader for training
"""
