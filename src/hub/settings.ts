// Where the Hub is and how to reach it, read from the environment the way
// huggingface_hub reads it, so both tools share one cache and one token.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface HubSettings {
  /** HF_ENDPOINT (default https://huggingface.co), without a trailing slash. */
  endpoint: string;
  /** HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. */
  cacheDir: string;
  /** HF_TOKEN, else the token file huggingface_hub's login writes ($HF_HOME/token). Never logged. */
  token: string | null;
  /** HF_HUB_OFFLINE=1: no network, the cache only. */
  offline: boolean;
}

const truthy = (v: string | undefined): boolean =>
  v !== undefined && ['1', 'on', 'yes', 'true'].includes(v.trim().toLowerCase());

function hfHome(env: NodeJS.ProcessEnv): string {
  if (env.HF_HOME) return env.HF_HOME;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
}

export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  const home = hfHome(env);
  let token = env.HF_TOKEN?.trim() || null;
  const tokenPath = env.HF_TOKEN_PATH || join(home, 'token');
  if (!token && existsSync(tokenPath)) {
    try {
      token = readFileSync(tokenPath, 'utf8').trim() || null;
    } catch {
      token = null;
    }
  }
  return {
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    cacheDir: env.HF_HUB_CACHE || join(home, 'hub'),
    token,
    offline: truthy(env.HF_HUB_OFFLINE),
  };
}

/** torch.hub's checkpoint folder ($TORCH_HOME/hub/checkpoints), where torchvision keeps its weight files. */
export function torchHubCheckpoints(env: NodeJS.ProcessEnv = process.env): string {
  const torchHome = env.TORCH_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'torch');
  return join(torchHome, 'hub', 'checkpoints');
}
