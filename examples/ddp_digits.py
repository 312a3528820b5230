"""Data-parallel training on MPI: the digits MLP with DistributedDataParallel.

Every process (rank) builds the same model; DistributedDataParallel copies rank 0's parameters
to the others and, after each backward(), averages the gradients across the ranks, so every
rank takes the same optimizer step. A DistributedSampler gives each rank its share of every
epoch (the same shuffled order on every rank, a new one per epoch); the test accuracy is counted
on each rank's share of the test set and summed with all_reduce. Rank 0 prints the progress.

Run on 2 processes (the MPI launcher of `pip install "fusegrad[distributed]"`, or your cluster's
mpirun/srun), or alone:
    mpirun -n 2 python examples/ddp_digits.py
    python examples/ddp_digits.py
    mpirun -n 2 python examples/ddp_digits.py --compile     # the step as one native call, MPI inside
"""
import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fusegrad as torch
import fusegrad.distributed as dist
import fusegrad.nn as nn
import fusegrad.optim as optim
from fusegrad.nn.parallel import DistributedDataParallel as DDP
from fusegrad.utils.data import DataLoader, TensorDataset
from fusegrad.utils.data.distributed import DistributedSampler

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=64, help="the global batch, split among the ranks")
parser.add_argument("--compile", action="store_true", help="compile the training step (@fusegrad.compile)")
args = parser.parse_args()

dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()

digits = load_digits()
x_all = (digits.data / 16.0).astype(np.float32)
x_train, x_test, y_train, y_test = train_test_split(x_all, digits.target, test_size=0.25, random_state=0)
train = TensorDataset(torch.tensor(x_train), torch.tensor(y_train))
test = TensorDataset(torch.tensor(x_test), torch.tensor(y_test))
sampler = DistributedSampler(train, seed=0, drop_last=True)
loader = DataLoader(train, batch_size=args.batch_size // world, sampler=sampler, drop_last=True)
test_loader = DataLoader(test, batch_size=256, sampler=DistributedSampler(test, shuffle=False))

torch.manual_seed(0)
model = DDP(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)))
optimizer = optim.Adam(model.parameters(), lr=1e-2)
criterion = nn.CrossEntropyLoss()


def train_step(x, y):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()                 # DDP averages the gradients across the ranks here
    optimizer.step()
    return loss


step = torch.compile(train_step) if args.compile else train_step
if rank == 0:
    print(f"{world} rank(s), {len(loader)} steps of {args.batch_size // world} samples per rank per epoch")
for epoch in range(args.epochs):
    sampler.set_epoch(epoch)
    start = time.perf_counter()
    total = torch.zeros(())
    for x, y in loader:
        total = total + step(x, y).detach()
    mean = total / len(loader)
    dist.all_reduce(mean, op=dist.ReduceOp.AVG)          # the mean loss over every rank's batches
    elapsed = time.perf_counter() - start
    if rank == 0:
        print(f"epoch {epoch:2d}  loss {mean.item():.4f}  {elapsed * 1e3 / len(loader):.2f} ms/step")

correct = torch.zeros((), dtype=torch.int64)
with torch.no_grad():
    for x, y in test_loader:
        correct += (model(x).argmax(1) == y).sum()
dist.all_reduce(correct)
# padding may count a few test images twice on some ranks; over the whole set it is close to exact
if rank == 0:
    print(f"test accuracy {correct.item() / len(test):.3f}")
dist.destroy_process_group()
