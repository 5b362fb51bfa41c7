#!/usr/bin/env node
import('../dist/core/cli/main.js').then((m) => m.main(process.argv.slice(2)));
