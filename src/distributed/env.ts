// torchrun's environment contract (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK,
// LOCAL_WORLD_SIZE): what torchrun, Slurm wrappers and Kubeflow's PyTorchJob set for each process.

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Collective/rendezvous timeout (GOODSREC_DIST_TIMEOUT seconds, default 300). */
  timeoutMs: number;
}

export const DEFAULT_DIST_TIMEOUT_S = 300;

function intVar(env: NodeJS.ProcessEnv, name: string, fallback?: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new Error(`distributed training: environment variable ${name} is not set (torchrun's contract needs it)`);
  }
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min)
    throw new Error(`distributed training: ${name}=${raw} is not an integer >= ${min}`);
  return v;
}

/** The distributed setting of this process, or null when WORLD_SIZE is unset (a plain single-process run). */
export function distEnvFromProcess(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return null;
  const worldSize = intVar(env, 'WORLD_SIZE', undefined, 1);
  const rank = intVar(env, 'RANK');
  if (rank >= worldSize) throw new Error(`distributed training: RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const localWorldSize = intVar(env, 'LOCAL_WORLD_SIZE', 1, 1);
  const localRank = intVar(env, 'LOCAL_RANK', 0);
  const masterPort = intVar(env, 'MASTER_PORT', 29500, 1);
  if (masterPort > 65535) throw new Error(`distributed training: MASTER_PORT=${masterPort} is not a port`);
  const timeoutS = Number(env.GOODSREC_DIST_TIMEOUT ?? DEFAULT_DIST_TIMEOUT_S);
  if (!(timeoutS > 0))
    throw new Error(
      `distributed training: GOODSREC_DIST_TIMEOUT=${env.GOODSREC_DIST_TIMEOUT} is not a positive number of seconds`,
    );
  return {
    rank,
    worldSize,
    localRank,
    localWorldSize,
    masterPort,
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    timeoutMs: Math.round(timeoutS * 1000),
  };
}
