/**
 * Where and how a job launches.
 *
 * @example
 * const cpu: LaunchTopology = { gpusPerNode: 0, nodes: 1, zero3: false, bf16: false };
 * accelerateConfigYaml(cpu, 'ds_zero3.json').includes('use_cpu: true'); // true
 */
export interface LaunchTopology {
  /** GPUs per node; 0 trains on CPU (smoke tests). */
  gpusPerNode: number;
  nodes: number;
  /** DeepSpeed ZeRO-3 (the paper's setup); default true with GPUs. */
  zero3: boolean;
  bf16: boolean;
}

/**
 * A DeepSpeed ZeRO-3 config without offloading, as open-instruct's stage3_no_offloading_accelerate.conf:
 * batch sizes, accumulation and clipping are `auto` (accelerate fills them in).
 *
 * @example
 * deepspeedZero3Config(true).zero_optimization.stage; // 3
 */
export function deepspeedZero3Config(bf16: boolean) {
  return {
    bf16: { enabled: bf16 ? 'auto' : false },
    zero_optimization: {
      stage: 3,
      overlap_comm: true,
      contiguous_gradients: true,
      sub_group_size: 1e9,
      reduce_bucket_size: 'auto',
      stage3_prefetch_bucket_size: 'auto',
      stage3_param_persistence_threshold: 'auto',
      stage3_max_live_parameters: 1e9,
      stage3_max_reuse_distance: 1e9,
      stage3_gather_16bit_weights_on_model_save: true,
    },
    gradient_accumulation_steps: 'auto',
    gradient_clipping: 'auto',
    steps_per_print: 1e5,
    train_batch_size: 'auto',
    train_micro_batch_size_per_gpu: 'auto',
    wall_clock_breakdown: false,
  };
}

/**
 * An `accelerate` config file (YAML) for the topology: CPU, one GPU, multi-GPU or multi-node, with
 * DeepSpeed ZeRO-3 when asked. Machine rank and the main node's address come from the launch
 * script's environment (MACHINE_RANK, MAIN_PROCESS_IP, MAIN_PROCESS_PORT).
 *
 * @example
 * accelerateConfigYaml({ gpusPerNode: 8, nodes: 2, zero3: true, bf16: true }, 'ds_zero3.json');
 */
export function accelerateConfigYaml(t: LaunchTopology, deepspeedFile: string): string {
  const processes = Math.max(1, t.gpusPerNode) * t.nodes;
  const lines = ['compute_environment: LOCAL_MACHINE', 'debug: false'];
  if (t.gpusPerNode === 0) {
    lines.push('distributed_type: NO', 'use_cpu: true', 'mixed_precision: "no"');
  } else if (t.zero3) {
    lines.push(
      'distributed_type: DEEPSPEED',
      'deepspeed_config:',
      `  deepspeed_config_file: ${deepspeedFile}`,
      `  deepspeed_multinode_launcher: standard`,
      '  zero3_init_flag: true',
      `mixed_precision: ${t.bf16 ? 'bf16' : '"no"'}`,
      'use_cpu: false',
    );
  } else {
    lines.push(
      `distributed_type: ${processes > 1 ? 'MULTI_GPU' : 'NO'}`,
      `mixed_precision: ${t.bf16 ? 'bf16' : '"no"'}`,
      'use_cpu: false',
      'gpu_ids: all',
    );
  }
  lines.push(
    'machine_rank: 0',
    'main_training_function: main',
    `num_machines: ${t.nodes}`,
    `num_processes: ${processes}`,
    'rdzv_backend: static',
    'same_network: true',
    'downcast_bf16: "no"',
    'tpu_env: []',
    'tpu_use_cluster: false',
    'tpu_use_sudo: false',
  );
  return `${lines.join('\n')}\n`;
}

/**
 * The job's `launch.sh`: runs `accelerate launch` with the job's config on `train.py`. Multi-node:
 * run it on every node with MACHINE_RANK=0..nodes-1 and MAIN_PROCESS_IP set to node 0's address.
 *
 * @example
 * launchScript({ gpusPerNode: 2, nodes: 1, zero3: true, bf16: true });
 */
export function launchScript(t: LaunchTopology): string {
  return `#!/usr/bin/env bash
# Launches this job's training. Written by @implicit-it/finetune (planJob).
# Needs: python with torch, transformers and accelerate${t.gpusPerNode > 0 && t.zero3 ? ', and deepspeed (ZeRO-3)' : ''}.
# Multi-node (${t.nodes} node${t.nodes > 1 ? 's' : ''}): run on every node with MACHINE_RANK=0..${t.nodes - 1} and
# MAIN_PROCESS_IP=<address of node 0>.
# Extra arguments go to train.py (e.g. --max-steps 5).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="\${PYTHON:-python3}"
exec "$PYTHON" -m accelerate.commands.launch \\
  --config_file accelerate.yaml \\
  --machine_rank "\${MACHINE_RANK:-0}" \\
  --main_process_ip "\${MAIN_PROCESS_IP:-127.0.0.1}" \\
  --main_process_port "\${MAIN_PROCESS_PORT:-29500}" \\
  train.py --job job.json "$@"
`;
}
