export { until } from '../support/until.js';
