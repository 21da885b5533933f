#!/usr/bin/env python3
"""Training entry point of an @implicit-it/finetune job.

Trains a causal LM on pre-encoded ids and loss masks (the shards the TypeScript package writes),
so the chat formatting and masking live once, in TypeScript. The loop mirrors open-instruct's
finetune.py as the paper ran it: AdamW, weight decay off for bias and layer-norm weights, a linear
schedule with int(total_steps * warmup_ratio) warmup steps, mean token cross-entropy over labels
that are not -100, gradient accumulation, one optimizer step per accumulation window.

The core (shard reading, batching, the loop) needs only torch and can be imported for tests;
main() additionally needs transformers and accelerate. Progress goes to stdout as lines
"IMPLICIT_IT_EVENT {json}" that `runJob` parses.
"""
import argparse
import json
import math
import os
import random
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

    ids = read(files["inputIds"], torch.int32).to(torch.int64)
    mask = read(files["lossMask"], torch.uint8).to(torch.bool)
    offsets = read(files["offsets"], torch.int64).tolist()
    if sys.byteorder != "little":
        raise RuntimeError("shards are little-endian; big-endian hosts are not supported")
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


def linear_schedule(optimizer, warmup_steps, total_steps):
    """transformers' get_linear_schedule_with_warmup, in plain torch."""

    def factor(step):
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
               validation=None, logging_steps=1):
    """Trains `model` in place; returns a summary dict. `forward(model, batch)` returns logits
    (default: model(input_ids=..., attention_mask=...).logits). With an accelerate `accelerator`
    (created with gradient_accumulation_steps=grad_accum), the dataloader is sharded across
    processes and accumulation/synchronization are accelerate's, as in open-instruct."""
    random.seed(seed)
    torch.manual_seed(seed)
    if forward is None:
        def forward(m, b):
            return m(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False).logits
    loader = torch.utils.data.DataLoader(
        examples, batch_size=batch_size, shuffle=True, collate_fn=lambda b: collate(b, pad_id),
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=learning_rate)
    if accelerator:
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    device = accelerator.device if accelerator else next(model.parameters()).device
    steps_per_epoch = math.ceil(len(loader) / grad_accum)
    total_steps = max_steps or epochs * steps_per_epoch
    warmup_steps = int(total_steps * warmup_ratio)
    # Not passed to accelerator.prepare: it is stepped once per optimizer step on every process.
    scheduler = linear_schedule(optimizer, warmup_steps, total_steps)
    emit("start", total_steps=total_steps, steps_per_epoch=steps_per_epoch, examples=len(examples),
         epochs=epochs, warmup_steps=warmup_steps, processes=accelerator.num_processes if accelerator else 1)
    step, started, window_loss, window_batches, val_losses = 0, time.time(), 0.0, 0, []
    model.train()
    for epoch in range(epochs):
        for i, batch in enumerate(loader):
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
        if validation:
            val = evaluate(model, validation, batch_size, pad_id, device, forward)
            val_losses.append(val)
            emit("eval", epoch=epoch + 1, step=step, val_loss=val)
        if step >= total_steps:
            break
    return {"steps": step, "total_steps": total_steps, "val_losses": val_losses,
            "elapsed_s": round(time.time() - started, 3), "model": model}


def export_onnx(output_dir):
    try:
        from optimum.exporters.onnx import main_export  # noqa: PLC0415
    except ImportError:
        emit("onnx", exported=False,
             reason="optimum is not installed; install it with: pip install 'optimum[exporters]' "
                    f"(then: optimum-cli export onnx --model {output_dir} {output_dir}/onnx)")
        return
    main_export(output_dir, output=os.path.join(output_dir, "onnx"), task="text-generation-with-past")
    emit("onnx", exported=True, path=os.path.join(output_dir, "onnx"))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train on an @implicit-it/finetune job")
    parser.add_argument("--job", required=True, help="the job's job.json")
    parser.add_argument("--max-steps", type=int, default=None, help="stop early (smoke tests)")
    args = parser.parse_args(argv)
    job_dir = os.path.dirname(os.path.abspath(args.job))
    with open(args.job) as f:
        job = json.load(f)
    t = job["training"]
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
        with open(os.path.join(job_dir, "result.json"), "w") as f:
            json.dump({**summary, "output": out}, f, indent=2)
        emit("saved", path=out)
        if job.get("exportOnnx", True):
            export_onnx(out)
        emit("done", **summary)


if __name__ == "__main__":
    main()
