/**
 * The import direction of docs/architecture.md, checked by test/architecture.test.ts:
 *
 *   cli (and the other composition roots: sdk.ts, generated.ts)
 *     → api (the control API: only the CLI imports it)
 *     → runtime / cluster (cluster may use runtime, never the reverse)
 *       → alerts (fed by the supervisor)
 *       → config, ledger, observe, registry
 *         → the plugin kernel (plugin API, item, errors, streams, units, templates, redaction, logger, once-per-key)
 *   plugins → the kernel only
 */
const KERNEL =
  '^core/(errors|plugin-api|schema-fragments|streams|item|units|template|glob|time-format|time-parse|if-exists|item-match|once-per-key)\\.ts$|^core/observe/(redact|logger)\\.ts$';
const MIDDLE = '^core/(config|ledger|observe)/|^core/(registry|schema-gen)\\.ts$';

module.exports = {
  forbidden: [
    {
      name: 'kernel-imports-only-kernel',
      comment: 'The kernel is what plugins see; it must not pull the runtime or the CLI in with it.',
      severity: 'error',
      from: { path: KERNEL },
      to: { path: '^(core|plugins)/', pathNot: KERNEL },
    },
    {
      name: 'plugins-import-only-kernel',
      comment: 'Plugins see only the kernel (what the SDK exports); the built-in list is wired at the composition roots.',
      severity: 'error',
      from: { path: '^plugins/' },
      to: { path: '^core/', pathNot: KERNEL },
    },
    {
      name: 'middle-does-not-import-up',
      comment: 'config, ledger and observe serve the runtime and the cluster; they never import them (nor plugins).',
      severity: 'error',
      from: { path: MIDDLE },
      to: { path: '^core/(runtime|cluster|cli|alerts)/|^plugins/' },
    },
    {
      name: 'alerts-import-only-config-observe-kernel',
      comment: 'The supervisor feeds alerts; alerting sees config, observe and the kernel, never the runtime above it.',
      severity: 'error',
      from: { path: '^core/alerts/' },
      to: { path: '^core/(runtime|cluster|cli|api|ledger)/|^plugins/' },
    },
    {
      name: 'runtime-does-not-import-cluster-cli-or-plugins',
      comment: 'Embedded or cluster mode is injected by the CLI; built-in plugins by the composition roots.',
      severity: 'error',
      from: { path: '^core/runtime/' },
      to: { path: '^core/(cluster|cli)/|^plugins/' },
    },
    {
      name: 'cluster-does-not-import-cli-or-plugins',
      severity: 'error',
      from: { path: '^core/cluster/' },
      to: { path: '^core/cli/|^plugins/' },
    },
    {
      name: 'only-the-cli-imports-the-api',
      comment: 'The control API (core/api) serves the CLI\'s status server and uses the runtime; nothing below the CLI imports it.',
      severity: 'error',
      from: { path: '^core/(config|ledger|observe|runtime|cluster)/|^plugins/', pathNot: '\\.test\\.ts$' },
      to: { path: '^core/api/' },
    },
    {
      name: 'api-does-not-import-cli-cluster-or-plugins',
      comment: 'Cluster mode reaches the API through the passes the CLI injects into the supervisor.',
      severity: 'error',
      from: { path: '^core/api/' },
      to: { path: '^core/(cli|cluster)/|^plugins/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: { path: '^(core|plugins)/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.test\\.ts$|^test/|^bench/|^dist/|^scripts/|node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs'] },
  },
};
