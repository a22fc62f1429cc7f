// A destructive action, done the one way the console does them: ask in `#confirm`, call the
// API (the error, if any, is toasted by api.js), toast what happened, reload the page's data.

import { api } from './api.js';
import { confirmAction, toast } from './feedback.js';

/**
 * button: disabled while it runs; question/yesLabel: the confirmation; call: {method, path,
 * query}; done(answer) → the toast text; reload: the page's reload.
 */
export async function act({ button, question, yesLabel, call, done, reload }) {
  if (!(await confirmAction(question, yesLabel))) return;
  if (button) button.disabled = true;
  try {
    const answer = await api(call.path, { method: call.method, query: call.query });
    toast(done(answer || {}));
    reload();
  } catch {
    // api.js has shown the API's code and message.
    if (button) button.disabled = false;
  }
}
