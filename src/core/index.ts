// The engine's public API (see README.md in this folder). The extension and the CLI import from here.
export { Engine, ReadOnlyError, type EngineEvents, type EngineOptions, type MetricsDelta, type RunSnapshot } from './engine';
export { RunStore, runKey, parseRunKey, ID_PATTERN, StoreError, type ExperimentInfo, type RunInfo, type RunKey, type RunSummary } from './runStore';
export { ConfigError, checkConfig, configErrors, loadConfig, parseConfigText, withDefaults, methodLabel, type RunConfig } from './config';
export { validate, formatErrors, schemaJson, type SchemaError, type SchemaName } from './schemas';
export { parseEventLine, EventTailer, EventLineParser, readAllEvents, type WorkerEvent, type SkippedLine } from './events';
export { RunSeries, type TrainPoint, type EvalPoint } from './series';
export { isTerminal, canResume, canTransition, RUN_STATES, TERMINAL_STATES, type RunState } from './runState';
export { DEFAULT_METHODS, DEFAULT_BASELINE, siblingConfig, compareRuns, summarizeRun, formatTable, tableColumns, type Comparison, type ComparisonRow, type MethodPreset } from './compare';
export { renderReport, findChartJs, type ReportInput } from './report';
export { workerCommand, type LauncherKind, type LaunchOptions } from './launcher';
export { ProgressBoard } from './progress';
export { demoConfig, DEMO_TASKS, type DemoTask } from './demo';
export { exportAdapter, destinationState, freeDestination, ExportError } from './exportAdapter';
export { metadataProblems, readMetadata, type MetadataFile, type MetadataRead } from './metadata';
export { printable } from './text';
