// The package's entry point in browsers (the `browser` export condition): what src/index.ts exports,
// with loadTokenizer and readTokenizerFiles, which read the file system, rejecting with a message that
// says to fetch the files and call createTokenizer. Nothing here imports a Node built-in;
// test/browser.test.ts bundles it for a browser and runs it in Chromium, and holds its exports to
// src/index.ts's.

export { loadTokenizer, readTokenizerFiles } from './browser-files.js';
export * from './portable.js';
