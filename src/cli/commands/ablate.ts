// goodsrec ablate: a base config against variants, each over several seeds, as ordinary train + eval runs;
// a summary with each variant's difference to the base and its 95% interval. Resumable.
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePlan, jobs, type AblateSpec } from '../../ablate/plan.js';
import { jobCommand, jobDone, runAblation, type RunnerOptions } from '../../ablate/runner.js';
import { summarize, writeSummary } from '../../ablate/summary.js';
import { renderAblationHtml } from '../../ablate/ablate-html.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/atomic.js';
import { defineCliCommand } from '../options.js';
import { EXIT } from '../errors.js';

export default defineCliCommand({
  name: 'ablate',
  description:
    'Ablation: train and evaluate a base config and its variants (--vary key=a,b: one factor at a time, or --grid) ' +
    'over --seeds seeds, N jobs at a time; summary with mean, sd and the difference to the base (Welch 95% interval). ' +
    'Run the same command again to continue after an interruption.',
  options: {
    config: { type: 'path', exists: 'file', description: 'base config file (YAML or JSON), as for goodsrec train' },
    set: { type: 'string', repeatable: true, description: 'base override, repeatable: --set input.size=64' },
    vary: {
      type: 'string',
      repeatable: true,
      description:
        "factor, repeatable: --vary input.resize=squash or --vary augment.cutout=4,8; eval-only keys share the base's training: " +
        'eval.size=80 (test size), eval.tta=flip, eval.ensemble=model.name=resnet34 (mean with that training, same seed) or eval.ensemble=seed+1 (with the next seed run)',
    },
    cell: {
      type: 'string',
      repeatable: true,
      description: "an extra cell with several settings, repeatable: --cell 'model.name=resnet34;data.fraction=0.5'",
    },
    grid: { type: 'boolean', description: 'every combination of the --vary values instead of one factor at a time' },
    seeds: { type: 'integer', min: 1, default: 3, description: 'seeds 0..N-1 per cell' },
    parallel: { type: 'integer', min: 1, default: 1, description: 'jobs at a time' },
    threads: { type: 'integer', min: 1, description: 'compute threads per job (default: cores / --parallel)' },
    split: { type: 'string', default: 'test', description: 'split the cells are evaluated on' },
    out: { type: 'path', required: true, description: 'ablation folder (runs, results, logs, summary)' },
    'dry-run': { type: 'boolean', description: 'print the plan and each job (done or to run) without running' },
    'summary-only': { type: 'boolean', description: 'write the summary of what has finished; run nothing' },
  },
  async run({ options: o }) {
    const spec: AblateSpec = {
      ...(o.config ? { config: resolve(o.config) } : {}),
      set: o.set,
      vary: o.vary,
      cells: o.cell,
      grid: o.grid,
      seeds: o.seeds,
    };
    const plan = makePlan(spec);
    const out = resolve(o.out);
    const runner: RunnerOptions = {
      cli: fileURLToPath(new URL('../main.js', import.meta.url)),
      out,
      parallel: o.parallel,
      threads: o.threads ?? Math.max(1, Math.floor(availableParallelism() / o.parallel)),
      split: o.split,
      log: (line) => console.error(`ablate: ${line}`),
    };
    const all = jobs(plan);
    if (o['dry-run']) {
      console.log(
        `${plan.cells.length} cells, ${plan.trainings.length} trainings, seeds ${plan.seeds.join(',')}, ` +
          `${runner.parallel} at a time with ${runner.threads} thread(s) each`,
      );
      for (const j of all)
        console.log(
          `${jobDone(out, j) ? 'done ' : 'to run'}  ${j.name}  goodsrec ${jobCommand(spec, runner, j).join(' ')}`,
        );
      return EXIT.ok;
    }
    writeJsonAtomic(resolve(out, 'plan.json'), { spec, plan });
    const outcome = o['summary-only'] ? undefined : await runAblation(spec, plan, runner);
    const summary = summarize(plan, out, o.split);
    const md = writeSummary(summary, out);
    writeFileAtomic(resolve(out, 'summary.html'), renderAblationHtml(summary, `goodsrec ablation: ${out}`));
    console.log(md);
    console.log(`written: ${resolve(out, 'summary.md')}, summary.json, summary.html`);
    if (!outcome) return EXIT.ok;
    if (outcome.interrupted) return EXIT.interrupted;
    if (outcome.failed.length) {
      console.error(
        `${outcome.failed.length} job(s) failed:\n${outcome.failed.map((f) => `  ${f.name}: ${f.message}`).join('\n')}`,
      );
      return EXIT.failure;
    }
    return EXIT.ok;
  },
});
