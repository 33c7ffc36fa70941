/** `runfleet apply` SIGKILLed at every step of a scale-up and a scale-down (see the harness). */
import t from 'tap';
import { crashEveryStep } from '../helpers/crash-consistency.js';

t.test('scale-up', (t) => crashEveryStep(t, 'apply', 'scale-up'));
t.test('scale-down', (t) => crashEveryStep(t, 'apply', 'scale-down'));
