"""`fusegrad.utils.data`: datasets, samplers, collation and the DataLoader, with the API of
`torch.utils.data`.

- dataset.py: Dataset, IterableDataset, TensorDataset, Subset, ConcatDataset, StackDataset,
  ChainDataset, random_split;
- sampler.py: Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler,
  WeightedRandomSampler, BatchSampler (random orders from fusegrad's generator);
- collate.py: default_collate, default_convert;
- fetch.py: reading one batch from a dataset (the TensorDataset fast path);
- worker.py: worker processes, get_worker_info;
- dataloader.py: DataLoader and its single- and multi-process iterators.
"""
from . import distributed
from .collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler
from .worker import WorkerInfo, get_worker_info

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset",
           "RandomSampler", "Sampler", "SequentialSampler", "StackDataset", "Subset", "SubsetRandomSampler",
           "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "default_collate", "default_convert",
           "get_worker_info", "random_split"]
