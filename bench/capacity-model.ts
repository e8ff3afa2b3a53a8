/**
 * Prints the capacity model of docs/scaling.md from the benchmark's results:
 *
 *   node bench/capacity-model.ts [bench/results/….json …]
 *
 * Without paths it reads every file of bench/results/ and picks the newest full-run figures
 * (bench/lib/capacity-model.ts says which). Paste the output between the generated-block comments
 * of docs/scaling.md; test/bench/capacity-model.test.ts fails while the two differ.
 */
import { loadResults, pickInputs, renderModel, resultPaths } from './lib/capacity-model.ts';

const paths = process.argv.length > 2 ? process.argv.slice(2) : await resultPaths();
process.stdout.write(`${renderModel(pickInputs(await loadResults(paths)))}\n`);
