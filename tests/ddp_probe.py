"""Run under torchrun by tests/test_distributed.py (not a test itself): trains a Trainer with hooks that record,
per rank, a hash of the parameters after every optimizer step and the dataset indices of every batch, then
writes them (and the final weights) to OUT/rank<R>.json / .pt. `fail` makes rank 1 raise after 3 steps."""
import hashlib
import json
import os
import sys

import torch

from tudui.config import resolve
from tudui.engine.trainer import Trainer


def main(out: str, mode: str, cfg_json: str) -> None:
    rank = int(os.environ["RANK"])
    t = Trainer(resolve(json.loads(cfg_json)), progress=False)
    hashes, batches = [], []
    loader = t.data.train
    finish = loader._finish

    def record(x, idx, epoch, b):
        batches.append([epoch, b, idx.tolist()])
        return finish(x, idx, epoch, b)
    loader._finish = record
    step = t.optimizer_step

    def optimizer_step(*a, **k):
        step(*a, **k)
        flat = torch.cat([p.detach().reshape(-1) for p in t.model.parameters()])
        hashes.append(hashlib.sha1(flat.numpy().tobytes()).hexdigest())
        if mode == "fail" and rank == 1 and len(hashes) == 3:
            raise RuntimeError("probe: rank 1 failed on purpose")
    t.optimizer_step = optimizer_step
    t.fit()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump({"rank": rank, "hashes": hashes, "batches": batches, "run_dir": t.run_dir}, fh)
    torch.save(t.model.state_dict(), os.path.join(out, f"rank{rank}.pt"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
