export * from './elementwise.js';
export * from './matmul.js';
export * from './shape.js';
export * from './reduce.js';
export * from './nn.js';
export * from './attention.js';
export * from './loss.js';
