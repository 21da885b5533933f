#!/usr/bin/env python3
"""Training entry point of an @implicit-it/finetune job.

Trains a causal LM on pre-encoded ids and loss masks (the shards the TypeScript package writes),
so the chat formatting and masking live once, in TypeScript. The loop mirrors open-instruct's
finetune.py as the paper ran it: AdamW, weight decay off for bias and layer-norm weights, a linear
schedule with int(schedule steps * warmup_ratio) warmup steps (sized as finetune.py sizes it, or for
this run's steps: see schedule_plan), mean token cross-entropy over labels that are not -100,
gradient accumulation, one optimizer step per accumulation window.

The core (shard reading, batching, the loop) needs only torch and can be imported for tests;
main() additionally needs transformers and accelerate. Progress goes to stdout as lines
"IMPLICIT_IT_EVENT {json}" that `runJob` parses.
"""
import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time

import torch

SHARD_FORMAT = "implicit-it/encoded-shard@1"
IGNORE_INDEX = -100


def emit(event, **fields):
    if int(os.environ.get("RANK", "0")) != 0:
        return  # one log per job: only the global main process reports
    print("IMPLICIT_IT_EVENT " + json.dumps({"event": event, **fields}), flush=True)


def load_shard(directory):
    """Reads a shard: a list of (input_ids, labels) int64 tensors, and the manifest."""
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != SHARD_FORMAT:
        raise ValueError(f"{directory}/manifest.json: format {manifest.get('format')!r}, expected {SHARD_FORMAT}")
    files = manifest["files"]

    def read(name, dtype):
        with open(os.path.join(directory, name), "rb") as f:
            data = bytearray(f.read())
        if not data:
            return torch.zeros(0, dtype=dtype)
        return torch.frombuffer(data, dtype=dtype)

    if sys.byteorder != "little":
        raise RuntimeError("shards are little-endian; big-endian hosts are not supported")
    # sizes checked before anything is sliced: a shard cut short (a job directory copied in part) would
    # otherwise fail deep in torch, or give examples that end early
    count, tokens = manifest["count"], manifest["tokens"]
    for key, width, expected in (("inputIds", 4, tokens), ("lossMask", 1, tokens), ("offsets", 8, count + 1)):
        path = os.path.join(directory, files[key])
        size = os.path.getsize(path) if os.path.isfile(path) else None
        if size != width * expected:
            found = "is missing" if size is None else f"holds {size} bytes"
            raise SystemExit(f"train.py: {path} {found}, and {directory}/manifest.json says {width * expected} "
                             f"({expected} x {width}); the shard is incomplete: copy the job directory again, or "
                             "plan the job again")
    ids = read(files["inputIds"], torch.int32).to(torch.int64)
    mask = read(files["lossMask"], torch.uint8).to(torch.bool)
    offsets = read(files["offsets"], torch.int64).tolist()
    examples = []
    for i in range(manifest["count"]):
        a, b = offsets[i], offsets[i + 1]
        x = ids[a:b].clone()
        y = torch.where(mask[a:b], x, torch.full_like(x, IGNORE_INDEX))
        examples.append((x, y))
    return examples, manifest


def collate(batch, pad_id):
    """Right-pads a batch (DataCollatorForSeq2Seq with padding='longest'): pad ids, -100 labels, attention mask 0."""
    width = max(len(x) for x, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.int64)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.int64)
    attention = torch.zeros((len(batch), width), dtype=torch.int64)
    for i, (x, y) in enumerate(batch):
        input_ids[i, : len(x)] = x
        labels[i, : len(y)] = y
        attention[i, : len(x)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def causal_lm_loss(logits, labels):
    """Mean cross-entropy of next-token prediction over labels that are not -100."""
    shift_logits = logits[..., :-1, :].contiguous().float()
    shift_labels = labels[..., 1:].contiguous()
    return torch.nn.functional.cross_entropy(
        shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1), ignore_index=IGNORE_INDEX
    )


def param_groups(model, weight_decay):
    no_decay = ["bias", "layer_norm.weight"]  # open-instruct's list, kept as is
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if not any(nd in n for nd in no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]


SCHEDULE_STEPS = ("reference", "run")


def schedule_plan(examples, *, batch_size, grad_accum, processes, epochs, warmup_ratio, schedule_steps,
                  max_steps=None, batches_per_process=None):
    """How many optimizer steps a run takes, and how its linear schedule is sized and stepped: a pure
    function of the unsplit example count and the process count (no accelerate needed).

    The run: the loader holds ceil(examples / batch_size) batches; accelerate gives each process
    ceil(that / processes) of them (`batches_per_process`, its even_batches default) and the run takes
    ceil(those / grad_accum) optimizer steps per epoch (`total_steps` in all).

    `schedule_steps`, job.json's training.scheduleSteps:
    - "reference": as the paper's open_instruct/finetune.py sizes and steps it. It sizes the schedule
      before accelerate splits the loader: epochs x ceil(unsplit batches / grad_accum) steps
      (`schedule_total`), int(that x warmup_ratio) of them warmup; accelerate's AcceleratedScheduler
      then advances it once per process at every optimizer step (`advance`: a linear LambdaLR is not
      one DeepSpeed steps itself, so it is wrapped the same way with ZeRO-3). With several processes
      the run's steps advance it past its end, and the last steps train at learning rate 0.
    - "run": sized for the steps this run takes, advanced once per step: it decays to 0 at the last.
    With one process both are the same schedule. `max_steps` (a smoke test) sizes it to that many
    steps whichever is asked for.

    Returns {"steps_per_epoch", "total_steps", "schedule_total", "warmup_steps", "advance"}.
    """
    if schedule_steps not in SCHEDULE_STEPS:
        raise ValueError(f"training.scheduleSteps {schedule_steps!r}: expected 'reference' (the paper's) or "
                         "'run'; plan the job again")
    batches = math.ceil(examples / batch_size)
    if batches_per_process is None:
        batches_per_process = math.ceil(batches / processes)
    steps_per_epoch = math.ceil(batches_per_process / grad_accum)
    total_steps = max_steps or epochs * steps_per_epoch
    if max_steps or schedule_steps == "run":
        schedule_total, advance = total_steps, 1
    else:
        schedule_total, advance = epochs * math.ceil(batches / grad_accum), processes
    return {"steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "schedule_total": schedule_total,
            "warmup_steps": int(schedule_total * warmup_ratio), "advance": advance}


def lr_factor(plan, step):
    """The learning rate over the peak after `step` optimizer steps: transformers' linear schedule with
    warmup (get_linear_schedule_with_warmup) at `step x advance` of its `schedule_total` steps."""
    at, warmup, total = step * plan["advance"], plan["warmup_steps"], plan["schedule_total"]
    if at < warmup:
        return at / max(1, warmup)
    return max(0.0, (total - at) / max(1, total - warmup))


def linear_schedule(optimizer, plan):
    """The schedule of `plan` (see schedule_plan) in plain torch, stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(plan, step))


class EpochShuffle(torch.utils.data.Sampler):
    """Epoch e's order is the (e+1)-th permutation drawn from torch.Generator().manual_seed(seed): the
    same in a run that resumes at any epoch as in one that never stopped, and on every process."""

    def __init__(self, n, seed):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        order = None
        for _ in range(self.epoch + 1):
            order = torch.randperm(self.n, generator=generator)
        return iter(order.tolist())


CHECKPOINT_FORMAT = "implicit-it/checkpoint@1"


def complete_checkpoints(directory):
    """The complete checkpoints under `directory` (those with a meta.json), oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.startswith("step-") and not name.endswith(".partial") and os.path.isfile(os.path.join(path, "meta.json")):
            found.append(path)
    return sorted(found, key=lambda p: int(os.path.basename(p)[len("step-"):]))


def save_checkpoint(directory, meta, model, optimizer, scheduler, accelerator, keep):
    """Writes checkpoints/step-N (model, optimizer, schedule, RNG states, where the loop stands) into
    step-N.partial and renames it once complete, then removes all but the newest `keep`."""
    final = os.path.join(directory, f"step-{meta['step']:08d}")
    partial = final + ".partial"
    main = accelerator.is_main_process if accelerator else True
    if accelerator is None or accelerator.is_local_main_process:
        if main:
            shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial, exist_ok=True)  # across nodes, a shared filesystem (ZeRO-3 writes per rank)
    if accelerator:
        accelerator.wait_for_everyone()
        accelerator.save_state(partial)  # model, optimizer, the registered scheduler, every RNG
        accelerator.wait_for_everyone()
    else:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate()}, os.path.join(partial, "state.pt"))
    if main:
        with open(os.path.join(partial, "meta.json"), "w") as f:
            json.dump({"format": CHECKPOINT_FORMAT, **meta}, f, indent=2)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(partial, final)
        for old in complete_checkpoints(directory)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    if accelerator:
        accelerator.wait_for_everyone()
    emit("checkpoint", step=meta["step"], path=final)


# identity keys that checkpoints written before them lack: compared only where the checkpoint has them
BASE_KEYS = ("base_model", "base_config", "lora")


def load_checkpoint(path, expected, model, optimizer, scheduler, accelerator):
    """Restores a checkpoint written by save_checkpoint; returns its meta. Refuses one written by a
    run that differs in what decides the steps (batch, accumulation, processes, seed, total steps),
    what is trained with them (epochs, learning rate, warmup, the schedule's sizing, weight decay, the
    data's digest) or what is trained (the base model, its config.json's digest, the LoRA settings)."""
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise SystemExit(f"train.py: {path}/meta.json: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    differs = [f"{k} {meta.get(k)!r} (now {v!r})" for k, v in expected.items()
               if meta.get(k) != v and (k in meta or k not in BASE_KEYS)]
    if differs:
        raise SystemExit(f"train.py: cannot resume from {path}: it was written by a run with " + ", ".join(differs)
                         + "; resume with the same settings (plan the job again with them), or delete "
                         + f"{os.path.dirname(path)} to start over")
    if accelerator:
        accelerator.load_state(path)
    else:
        state = torch.load(os.path.join(path, "state.pt"), weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
    return meta


def base_identity(model, lora):
    """What a run's weights start from: the model as job.json names it (a local directory or a hub id),
    the first 16 hex digits of a SHA-256 of its config.json where it is a directory (a model replaced in
    place), and the LoRA settings (None without LoRA)."""
    config = os.path.join(model, "config.json")
    digest = None
    if os.path.isfile(config):
        with open(config, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return {"base_model": model, "base_config": digest, "lora": lora}


def data_digest(examples):
    """The first 16 hex digits of a SHA-256 over every example's input ids and labels, in order."""
    digest = hashlib.sha256()
    for x, y in examples:
        digest.update(len(x).to_bytes(8, "little"))
        digest.update(x.to(torch.int64).numpy().tobytes())
        digest.update(y.to(torch.int64).numpy().tobytes())
    return digest.hexdigest()[:16]


def evaluate(model, examples, batch_size, pad_id, device, forward):
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for k in range(0, len(examples), batch_size):
            batch = {key: v.to(device) for key, v in collate(examples[k : k + batch_size], pad_id).items()}
            logits = forward(model, batch)
            tokens = int((batch["labels"][..., 1:] != IGNORE_INDEX).sum())
            total += float(causal_lm_loss(logits, batch["labels"])) * tokens
            n += tokens
    model.train()
    return total / max(1, n)


def train_loop(model, examples, *, epochs, learning_rate, warmup_ratio, weight_decay, batch_size,
               grad_accum, seed, pad_id, forward=None, accelerator=None, max_steps=None,
               validation=None, logging_steps=1, checkpoint=None, schedule_steps="reference", base=None):
    """Trains `model` in place; returns a summary dict. `forward(model, batch)` returns logits
    (default: model(input_ids=..., attention_mask=...).logits). With an accelerate `accelerator`
    (created with gradient_accumulation_steps=grad_accum), the dataloader is sharded across
    processes and accumulation/synchronization are accelerate's, as in open-instruct.
    `schedule_steps` ("reference" or "run") sizes the linear schedule: see schedule_plan.
    `base` ({"base_model", "base_config", "lora"}, see base_identity) names what the model was built from:
    a checkpoint of another base model, or other LoRA settings, is refused.

    `checkpoint`: {"dir": ..., "every": "epoch" | N optimizer steps | None, "keep": K, "resume": path
    or None}. A checkpoint is taken at an optimizer-step boundary; a run resumed from it takes the
    same steps on the same batches, with the same schedule and RNG states, as one that never stopped."""
    random.seed(seed)
    torch.manual_seed(seed)
    checkpoint = checkpoint or {}
    if forward is None:
        def forward(m, b):
            return m(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False).logits
    sampler = EpochShuffle(len(examples), seed)
    loader = torch.utils.data.DataLoader(
        examples, batch_size=batch_size, sampler=sampler, collate_fn=lambda b: collate(b, pad_id),
        # its own generator: each epoch's iterator draws a base seed, which must not come from the global
        # RNG (dropout's) or a run resumed mid-epoch would draw its dropout masks one seed later
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=learning_rate)
    if accelerator:
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    device = accelerator.device if accelerator else next(model.parameters()).device
    processes = accelerator.num_processes if accelerator else 1
    plan = schedule_plan(len(examples), batch_size=batch_size, grad_accum=grad_accum, processes=processes,
                         epochs=epochs, warmup_ratio=warmup_ratio, schedule_steps=schedule_steps,
                         max_steps=max_steps, batches_per_process=len(loader))
    steps_per_epoch, total_steps = plan["steps_per_epoch"], plan["total_steps"]
    # Not passed to accelerator.prepare: it is stepped once per optimizer step on every process, and
    # advances plan["advance"] schedule steps each time.
    scheduler = linear_schedule(optimizer, plan)
    if accelerator:
        accelerator.register_for_checkpointing(scheduler)
    # what a resumed run must share with the run that wrote its checkpoint: the steps and batches, and
    # what the restored optimizer and schedule would otherwise keep from the old run without a word
    # (their learning rate, warmup and weight decay) or train on (other data of the same size)
    identity = {"total_steps": total_steps, "steps_per_epoch": steps_per_epoch, "examples": len(examples),
                "batch_size": batch_size, "grad_accum": grad_accum, "processes": processes, "seed": seed,
                "epochs": epochs, "learning_rate": learning_rate, "warmup_ratio": warmup_ratio,
                "weight_decay": weight_decay, "data": data_digest(examples), "schedule_steps": schedule_steps,
                **(base or {})}
    step, first_epoch, skip, elapsed, val_losses = 0, 0, 0, 0.0, []
    if checkpoint.get("resume"):
        meta = load_checkpoint(checkpoint["resume"], identity, model, optimizer, scheduler, accelerator)
        step, first_epoch, skip = meta["step"], meta["epoch"], meta["batches_done"]
        elapsed, val_losses = meta["elapsed_s"], list(meta["val_losses"])
        emit("resume", step=step, epoch=first_epoch + 1, path=checkpoint["resume"])
    # where the steps run, and in what precision: "cuda" (one GPU; "cuda:N" with several) / "bf16", or "cpu" / "no"
    precision = str(getattr(accelerator, "mixed_precision", "no")) if accelerator else "no"
    emit("start", total_steps=total_steps, steps_per_epoch=steps_per_epoch, examples=len(examples),
         epochs=epochs, warmup_steps=plan["warmup_steps"], processes=processes, step=step,
         device=str(device), mixed_precision=precision,
         schedule_steps=schedule_steps, schedule_total=plan["schedule_total"], schedule_advance=plan["advance"])
    every = checkpoint.get("every")

    def save(epoch, batches_done):
        save_checkpoint(checkpoint["dir"], {**identity, "step": step, "epoch": epoch, "batches_done": batches_done,
                                            "val_losses": val_losses, "elapsed_s": round(time.time() - started, 3)},
                        model, optimizer, scheduler, accelerator, checkpoint.get("keep", 1))

    started, window_loss, window_batches = time.time() - elapsed, 0.0, 0
    model.train()
    for epoch in range(first_epoch, epochs):
        if step >= total_steps:
            break
        sampler.set_epoch(epoch)
        if hasattr(loader, "set_epoch"):
            # accelerate's loader sets its sampler's epoch to how often it was iterated: here, from 0
            # in a resumed run
            loader.set_epoch(epoch)
        for i, batch in enumerate(loader):
            if epoch == first_epoch and i < skip:
                continue  # trained on before the checkpoint this run resumed from
            batch = {k: v.to(device) for k, v in batch.items()}
            if accelerator:
                with accelerator.accumulate(model):
                    loss = causal_lm_loss(forward(model, batch), batch["labels"])
                    accelerator.backward(loss)
                    optimizer.step()
                    optimizer.zero_grad()
                synced = accelerator.sync_gradients
            else:
                loss = causal_lm_loss(forward(model, batch), batch["labels"])
                (loss / grad_accum).backward()
                synced = (i + 1) % grad_accum == 0 or i + 1 == len(loader)
                if synced:
                    optimizer.step()
                    optimizer.zero_grad()
            window_loss += float(loss.detach())
            window_batches += 1
            if not synced:
                continue
            scheduler.step()
            step += 1
            if step % logging_steps == 0 or step == total_steps:
                loss_value = window_loss / window_batches
                if accelerator:
                    loss_value = float(accelerator.gather(torch.tensor([loss_value], device=device)).mean())
                emit("step", step=step, total_steps=total_steps, epoch=epoch + 1, loss=loss_value,
                     lr=scheduler.get_last_lr()[0], elapsed_s=round(time.time() - started, 3))
            window_loss, window_batches = 0.0, 0
            if step >= total_steps:
                break
            if isinstance(every, int) and step % every == 0 and i + 1 < len(loader):
                save(epoch, i + 1)
        if validation:
            val = evaluate(model, validation, batch_size, pad_id, device, forward)
            val_losses.append(val)
            emit("eval", epoch=epoch + 1, step=step, val_loss=val)
        if every is not None and step < total_steps:
            save(epoch + 1, 0)  # each epoch's end (step checkpoints too: the next resumes past its eval)
    return {"steps": step, "total_steps": total_steps, "val_losses": val_losses,
            "elapsed_s": round(time.time() - started, 3), "model": model}


def name_bos_stand_in(output_dir, manifest):
    """A job that put the EOS token in front of every example because the tokenizer has no BOS (OLMo,
    `addBos`) names it as the output tokenizer's bos_token, as open-instruct saves its tokenizer after
    `tokenizer.bos_token = tokenizer.eos_token`, with add_bos_token: true, so that tokenizing a prompt
    with special tokens (Python's GPT-NeoX and Llama tokenizers, @implicit-it/tokenizers, whose Tulu
    prompts start with BOS where the tokenizer adds it) starts it as the training examples started.
    Returns whether tokenizer_config.json was written."""
    tokenizer = manifest["tokenizer"]
    if not manifest.get("addBos") or tokenizer.get("bosId") is not None:
        return False
    path = os.path.join(output_dir, "tokenizer_config.json")
    config = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    config["bos_token"] = tokenizer["eosToken"]
    config["add_bos_token"] = True
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return True


def export_onnx(output_dir, lora=False):
    if lora:  # peft saved the adapter alone: optimum exports whole models
        emit("onnx", exported=False,
             reason="the output is a LoRA adapter, which optimum does not export; "
                    f"merge it into its base without Python: implicit-it model export {output_dir}")
        return
    try:
        from optimum.exporters.onnx import main_export  # noqa: PLC0415
    except ImportError:
        emit("onnx", exported=False,
             reason="optimum is not installed; install it with: pip install 'optimum[exporters]' "
                    f"(then: optimum-cli export onnx --model {output_dir} {output_dir}/onnx), "
                    f"or export llama / qwen2 models without Python: implicit-it model export {output_dir}")
        return
    try:
        main_export(output_dir, output=os.path.join(output_dir, "onnx"), task="text-generation-with-past")
    except Exception as error:  # noqa: BLE001 - the model is trained and saved; the export is a convenience
        emit("onnx", exported=False, reason=f"optimum's export failed: {type(error).__name__}: {error}")
        return
    emit("onnx", exported=True, path=os.path.join(output_dir, "onnx"))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train on an @implicit-it/finetune job")
    parser.add_argument("--job", required=True, help="the job's job.json")
    parser.add_argument("--max-steps", type=int, default=None, help="stop early (smoke tests)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in the job's checkpoints/ directory")
    args = parser.parse_args(argv)
    job_dir = os.path.dirname(os.path.abspath(args.job))
    with open(args.job) as f:
        job = json.load(f)
    t = job["training"]
    # jobs planned before scheduleSteps existed keep the schedule they were planned with
    schedule_steps = t.get("scheduleSteps", "run")
    if schedule_steps not in SCHEDULE_STEPS:
        raise SystemExit(f"train.py: {args.job}: training.scheduleSteps {schedule_steps!r}: expected 'reference' "
                         "(the paper's) or 'run'; plan the job again")
    # checked before anything loads: a resume needs a checkpoint, a fresh start must not mix its
    # checkpoints with an earlier run's (pruning keeps the highest steps, which would be the old ones)
    checkpoint_dir = os.path.join(job_dir, "checkpoints")
    existing = complete_checkpoints(checkpoint_dir)
    if args.resume and not existing and os.path.isfile(os.path.join(job_dir, "result.json")):
        raise SystemExit(f"train.py: --resume: the job is finished (its model is in {os.path.join(job_dir, job['outputDir'])}, "
                         "see result.json; checkpoints are removed once the model is saved): there is nothing to resume")
    if args.resume and not existing:
        raise SystemExit(f"train.py: --resume: no complete checkpoint in {checkpoint_dir}; run without --resume to start")
    if not args.resume and existing:
        raise SystemExit(f"train.py: {checkpoint_dir} holds checkpoints of an earlier run (newest: "
                         f"{os.path.basename(existing[-1])}): pass --resume to continue it, or delete the "
                         "directory to start over")
    checkpointing = job.get("checkpointing")  # absent in jobs planned before checkpoints existed
    checkpoint = {"dir": checkpoint_dir, "every": checkpointing["every"] if checkpointing else None,
                  "keep": checkpointing["keep"] if checkpointing else 1,
                  "resume": existing[-1] if args.resume else None}
    # the tokenizer files the output model gets: the job's copy (relative to the job), else the model's
    # directory; checked now, not after hours of training
    tokenizer_dir = os.path.join(job_dir, job.get("tokenizerDir") or job["model"])
    local_tokenizer = bool(job.get("tokenizerDir")) or os.path.isdir(tokenizer_dir)
    if local_tokenizer and not os.path.isfile(os.path.join(tokenizer_dir, "tokenizer.json")):
        raise SystemExit(f"train.py: no tokenizer.json in {tokenizer_dir}: the trained model could not be loaded "
                         "without it; plan the job again (it keeps a copy of the tokenizer in tokenizer/)")

    from accelerate import Accelerator  # noqa: PLC0415
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    from accelerate.utils import set_seed  # noqa: PLC0415

    mixed = "bf16" if t["bf16"] and job["launch"]["gpusPerNode"] > 0 else "no"
    accelerator = Accelerator(gradient_accumulation_steps=t["gradientAccumulationSteps"], mixed_precision=mixed)
    # seeded before the model is built, as open-instruct does: LoRA's adapter init draws from it
    set_seed(t["seed"])
    examples, manifest = load_shard(os.path.join(job_dir, job["data"]["train"]))
    validation = None
    if job["data"].get("validation"):
        validation, _ = load_shard(os.path.join(job_dir, job["data"]["validation"]))
    # float32 weights, as the paper's finetune.py loads them: bf16 is mixed precision (accelerate /
    # DeepSpeed autocast, fp32 master weights), not bf16 parameters, whose small updates round away
    model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32)
    if t.get("lora"):
        from peft import LoraConfig, TaskType, get_peft_model  # noqa: PLC0415
        lora = t["lora"]
        model = get_peft_model(model, LoraConfig(task_type=TaskType.CAUSAL_LM, r=lora["rank"], lora_alpha=lora["alpha"],
                                                 lora_dropout=lora["dropout"], target_modules=lora["targetModules"]))
    if t.get("gradientCheckpointing"):
        model.gradient_checkpointing_enable()
    pad_id = manifest["tokenizer"].get("bosId") or 0  # padded positions carry no attention and no loss
    summary = train_loop(
        model, examples, epochs=t["epochs"], learning_rate=t["learningRate"], warmup_ratio=t["warmupRatio"],
        weight_decay=t["weightDecay"], batch_size=t["perDeviceBatchSize"], grad_accum=t["gradientAccumulationSteps"],
        seed=t["seed"], pad_id=pad_id, accelerator=accelerator, max_steps=args.max_steps, validation=validation,
        checkpoint=checkpoint,
        schedule_steps=schedule_steps,
        base=base_identity(job["model"], t.get("lora")),
    )
    model = summary.pop("model")
    out = os.path.join(job_dir, job["outputDir"])
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(out, is_main_process=accelerator.is_main_process, save_function=accelerator.save,
                              state_dict=accelerator.get_state_dict(model))
    if accelerator.is_main_process:
        if local_tokenizer:
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                         "generation_config.json"):
                src = os.path.join(tokenizer_dir, name)
                if os.path.isfile(src):
                    with open(src, "rb") as fi, open(os.path.join(out, name), "wb") as fo:
                        fo.write(fi.read())
        else:  # a hub model planned with a tokenizer object of its own: the hub's tokenizer
            from transformers import AutoTokenizer  # noqa: PLC0415
            AutoTokenizer.from_pretrained(job["model"]).save_pretrained(out)
        name_bos_stand_in(out, manifest)
        with open(os.path.join(job_dir, "result.json"), "w") as f:
            json.dump({**summary, "output": out}, f, indent=2)
        emit("saved", path=out)
        # checkpoints exist to resume an interrupted run; this one is done and its model saved
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if job.get("exportOnnx", True):
            export_onnx(out, lora=bool(t.get("lora")))
        emit("done", **summary)


if __name__ == "__main__":
    main()
