/** Training loops on the backbone: a generic causal-LM trainer and backbone pretraining. */
export * from './lm-trainer.js';
export * from './pretrain.js';
