/** Data: loaders, cleaning, the period protocol, candidate sets and prepared splits. */
export { DataError } from './errors.js';
export type { RawInteraction, RawItem, InteractionColumns, ItemColumns } from './records.js';
export { readCsvInteractions, readCsvItems, type CsvOptions } from './csv.js';
export { readAmazonReviews, readAmazonMeta } from './amazon.js';
export { parsePythonLiteral } from './python-literal.js';
export { readRecboleInter, readRecboleItems } from './recbole.js';
export { Dataset } from './dataset.js';
export { cleanDataset, DEFAULT_CLEAN, type CleanOptions, type CleanReport } from './clean.js';
export {
  PeriodSplit,
  DEFAULT_PERIODS,
  USER_GROUPS,
  SAMPLE_ROLES,
  type Period,
  type PeriodOptions,
  type Sample,
  type SampleRole,
  type UserGroup,
} from './periods.js';
export { CandidateSampler, DEFAULT_CANDIDATES, NEGATIVE_SAMPLERS, type CandidateOptions, type NegativeSampler } from './candidates.js';
export { loadDataset, resolveSource, PRESETS, type DataSourceOptions, type DataFormat } from './source.js';
export { prepare, loadSplit, type PrepareOptions, type PrepareResult, type PreparedStats } from './prepare.js';
export { datasetStats, periodStats, type DatasetStats, type PeriodStats } from './stats.js';
export { keyedRandom } from './rng.js';
