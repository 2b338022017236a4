/**
 * evorec: keep an LLM-based sequential recommender current with EvoRec (Locate-Forget-Update).
 * The library entry point re-exports each layer's public API.
 */
export * from './data/index.js';
export * from './nn/index.js';
export * from './train/index.js';
