#!/usr/bin/env node
// `npm run bench`: the benchmarks of issue 7 are not built yet. Say so plainly instead of faking output.
process.stderr.write('npm run bench: the benchmark suite (bench/) is not implemented yet; nothing was measured.\n');
process.exit(2);
