"""Runs train.py's torch-only core on a shard written by the TypeScript tests (see train-python.test.ts).

Usage: core_check.py PATH_TO_train.py SHARD_DIR -> prints one JSON object.
"""
import importlib.util
import json
import sys

import torch

spec = importlib.util.spec_from_file_location("train", sys.argv[1])
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)

examples, manifest = train.load_shard(sys.argv[2])
batch = train.collate(examples[:3], pad_id=0)

vocab = 64
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Embedding(vocab, 32), torch.nn.Linear(32, vocab))


def forward(m, b):
    return m(b["input_ids"])


def mean_loss():
    with torch.no_grad():
        b = train.collate(examples, pad_id=0)
        return float(train.causal_lm_loss(forward(model, b), b["labels"]))


before = mean_loss()
summary = train.train_loop(model, examples, epochs=3, learning_rate=1e-2, warmup_ratio=0.1, weight_decay=0.0,
                           batch_size=4, grad_accum=2, seed=1, pad_id=0, forward=forward, validation=examples[:4])
after = mean_loss()

# The loss is the mean over trained positions only: recompute it by hand from the unmasked ones.
b = train.collate(examples[:2], pad_id=0)
with torch.no_grad():
    logits = forward(model, b)
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    target = b["labels"][:, 1:]
    keep = target != -100
    manual = -logp[keep].gather(-1, target[keep].unsqueeze(-1)).mean()
    same = abs(float(train.causal_lm_loss(logits, b["labels"])) - float(manual)) < 1e-5
print(json.dumps({
    "count": len(examples),
    "first_ids": examples[0][0].tolist(),
    "first_labels": examples[0][1].tolist(),
    "batch_shape": list(batch["input_ids"].shape),
    "pad_labels": int((batch["labels"] == -100).sum()),
    "attention": int(batch["attention_mask"].sum()),
    "before": before,
    "after": after,
    "steps": summary["steps"],
    "total_steps": summary["total_steps"],
    "val_losses": summary["val_losses"],
    "mask_ok": same,
}))
