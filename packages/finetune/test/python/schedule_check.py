"""Sizes and steps train.py's linear schedule without accelerate (see train-python.test.ts).

Usage: schedule_check.py PATH_TO_train.py SHARD_DIR -> prints one JSON object:
- "plans": schedule_plan for the cases read as JSON from stdin ([{"examples", "batch_size", ...}]);
- "lrs": for LIMA response tuning (1030 examples, batch 1, 5 epochs, warmup 0.03) on 1 process
  (accumulation 64) and 2 (accumulation 32), in both modes: the learning rate each optimizer step trains
  with, and the one after the last, from the LambdaLR train.py steps;
- "refused": schedule_plan's message for an unknown mode;
- "start": the start event of train_loop on the shard, in both modes (one process).
"""
import importlib.util
import json
import sys

import torch

spec = importlib.util.spec_from_file_location("train", sys.argv[1])
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)

plans = [train.schedule_plan(c.pop("examples"), **c) for c in json.load(sys.stdin)]


def lrs(processes, schedule_steps):
    plan = train.schedule_plan(1030, batch_size=1, grad_accum=64 // processes, processes=processes, epochs=5,
                               warmup_ratio=0.03, schedule_steps=schedule_steps)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    scheduler = train.linear_schedule(optimizer, plan)
    during = []
    for _ in range(plan["total_steps"]):
        during.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return {"plan": plan, "during": during, "after": scheduler.get_last_lr()[0]}


try:
    train.schedule_plan(10, batch_size=1, grad_accum=1, processes=1, epochs=1, warmup_ratio=0,
                        schedule_steps="unsplit")
    refused = None
except ValueError as e:
    refused = str(e)

examples, _ = train.load_shard(sys.argv[2])
starts = {}
for mode in ("reference", "run"):
    emit = train.emit
    train.emit = lambda event, **f: starts.__setitem__(mode, f) if event == "start" else None
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(64, 8), torch.nn.Linear(8, 64))
        train.train_loop(model, examples, epochs=2, learning_rate=1e-2, warmup_ratio=0.1, weight_decay=0.0,
                         batch_size=4, grad_accum=2, seed=1, pad_id=0, forward=lambda m, b: m(b["input_ids"]),
                         schedule_steps=mode)
    finally:
        train.emit = emit

print(json.dumps({
    "plans": plans,
    "lrs": {f"{p}-{mode}": lrs(p, mode) for p in (1, 2) for mode in ("reference", "run")},
    "refused": refused,
    "start": starts,
}))
