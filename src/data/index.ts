export { CIFAR_CLASSES, CIFAR_PIXELS, CIFAR_SIZE, loadCifar, parseCifarBatch } from './cifar.js';
export type { CifarSplit } from './cifar.js';
export { DATASETS, fetchAllowed, fetchDataset, verifyDataset, withDatasetFetch } from './fetch.js';
export type { DatasetName, FileCheck } from './fetch.js';
export {
  ASSIGNMENT_DIRS,
  MissingDatasetError,
  OFFICIAL_FILES,
  locateAssignmentFile,
  md5,
  readDataFile,
  resolveDataDir,
} from './files.js';
export type { DataFileRecord } from './files.js';
export { MNIST_HEIGHT, MNIST_PIXELS, MNIST_WIDTH, loadMnist, parseIdxImages, parseIdxLabels } from './mnist.js';
export type { MnistSplit } from './mnist.js';
export { encodePt, readPt } from './torch-pt.js';
export type { PtTensor } from './torch-pt.js';
