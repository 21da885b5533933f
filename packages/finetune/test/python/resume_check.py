"""Resumes train.py's torch-only loop from its checkpoints (see train-python.test.ts).

Usage: resume_check.py PATH_TO_train.py SHARD_DIR -> prints one JSON object: for each case, a run
interrupted after some forward passes and resumed from its newest checkpoint, against one that never
stopped (weights compared exactly); and the message of a resume with different settings.
"""
import importlib.util
import json
import os
import sys
import tempfile

import torch

spec = importlib.util.spec_from_file_location("train", sys.argv[1])
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
examples, _ = train.load_shard(sys.argv[2])


class Interrupted(Exception):
    pass


def run(checkpoint=None, stop_after=None, grad_accum=2, learning_rate=1e-2, data=examples, schedule_steps="reference",
        base=None):
    """3 epochs; dropout, so the RNG state matters. Returns (model, summary or None, step losses)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(64, 32), torch.nn.Dropout(0.2), torch.nn.Linear(32, 64))
    calls = [0]

    def forward(m, b):
        calls[0] += 1
        if stop_after is not None and calls[0] > stop_after:
            raise Interrupted()
        return m(b["input_ids"])

    losses = []
    emit = train.emit
    train.emit = lambda event, **f: losses.append(f["loss"]) if event == "step" else None
    try:
        summary = train.train_loop(model, data, epochs=3, learning_rate=learning_rate, warmup_ratio=0.1, weight_decay=0.0,
                                   batch_size=3, grad_accum=grad_accum, seed=1, pad_id=0, forward=forward,
                                   validation=examples[:4], checkpoint=checkpoint, schedule_steps=schedule_steps,
                                   base=base)
    except Interrupted:
        summary = None
    finally:
        train.emit = emit
    return model, summary, losses


reference, ref_summary, ref_losses = run()
cases = []
# 32 examples in batches of 3: 11 batches, 6 optimizer steps per epoch; validation takes 2 forward passes
for every, stop_after in (("epoch", 15), ("epoch", 28), (4, 12), (1, 2)):
    directory = tempfile.mkdtemp()
    _, _, first = run({"dir": directory, "every": every, "keep": 1}, stop_after=stop_after)
    kept = sorted(os.listdir(directory))
    newest = train.complete_checkpoints(directory)[-1]
    with open(os.path.join(newest, "meta.json")) as f:
        meta = json.load(f)
    model, summary, second = run({"dir": directory, "every": every, "keep": 1, "resume": newest})
    cases.append({
        "every": every,
        "kept": kept,
        "resumed_at": meta["step"],
        "same_weights": all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(),
                                                              model.state_dict().values())),
        "losses": first[: meta["step"]] + second,
        "val_losses": summary["val_losses"],
        "steps": summary["steps"],
    })

try:  # the last case's newest checkpoint, resumed with another accumulation
    run({"dir": directory, "every": "epoch", "keep": 1, "resume": train.complete_checkpoints(directory)[-1]},
        grad_accum=1)
    refused = None
except SystemExit as e:
    refused = str(e)



def refusal(at=None, **changed):
    """The message of a resume from the newest checkpoint in `at` (default: the last case's) with
    `changed` settings; None when it resumed."""
    at = at or directory
    try:
        run({"dir": at, "every": "epoch", "keep": 1, "resume": train.complete_checkpoints(at)[-1]}, **changed)
    except SystemExit as e:
        return str(e)
    return None


# the same steps, but the restored optimizer and schedule would keep the old learning rate, and the
# loop would go on with other examples of the same count
other_data = [(x, torch.where(y == train.IGNORE_INDEX, y, (y + 1) % 64)) for x, y in examples]
# checkpoints that name their base: another base model, or other LoRA settings, are refused; the same
# base resumes; a checkpoint written before bases were recorded (the last case's) resumes with one
model_dir = tempfile.mkdtemp()
with open(os.path.join(model_dir, "config.json"), "w") as f:
    f.write('{"model_type": "llama"}')
base = train.base_identity(model_dir, None)
based = tempfile.mkdtemp()
run({"dir": based, "every": 4, "keep": 1}, stop_after=12, base=base)
with open(os.path.join(train.complete_checkpoints(based)[-1], "meta.json")) as f:
    based_meta = json.load(f)
bases = {"base": base, "meta": {k: based_meta.get(k) for k in train.BASE_KEYS},
         "refused_model": refusal(based, base=train.base_identity(tempfile.mkdtemp(), None)),
         "refused_lora": refusal(based, base=train.base_identity(model_dir, {"rank": 8})),
         "same": refusal(based, base=base), "legacy": refusal(base=base)}
print(json.dumps({"ref_losses": ref_losses, "ref_val_losses": ref_summary["val_losses"], "cases": cases,
                  "refused": refused, "refused_lr": refusal(learning_rate=1e-3),
                  "refused_data": refusal(data=other_data), "refused_schedule": refusal(schedule_steps="run"),
                  "digests": [train.data_digest(examples), train.data_digest(other_data)], "bases": bases}))
