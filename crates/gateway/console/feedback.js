// Telling the operator what happened: the status line `#toast` (role=status, polite) for
// results and errors, and the `<dialog id="confirm">` every destructive action asks first.
// One place, so every page words and times them the same way.

const TOAST_MS = 8000;
const MAX_MESSAGES = 4;

/**
 * Shows a message in `#toast` for a few seconds; `kind` is "info" or "error". The same text
 * again while it is shown only restarts its timer, so a failing endpoint asked by several
 * loads is said once.
 */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toast');
  if (!box) return;
  let line = [...box.children].find((p) => p.textContent === text && p.className === `toast-${kind}`);
  if (line) {
    clearTimeout(line.timer);
  } else {
    line = document.createElement('p');
    line.className = `toast-${kind}`;
    line.textContent = text;
    box.append(line);
    while (box.childElementCount > MAX_MESSAGES) box.firstElementChild.remove();
  }
  line.timer = setTimeout(() => line.remove(), kind === 'error' ? TOAST_MS * 1.5 : TOAST_MS);
}

/** Drops the error messages (they were about the page being left). */
export function clearErrors() {
  for (const p of document.querySelectorAll('#toast p.toast-error')) p.remove();
}

/**
 * Asks in `#confirm`; resolves true when the operator chose `#confirm-yes`. Cancel and Escape
 * resolve false. Focus starts on Cancel, so Enter alone never destroys anything.
 */
export function confirmAction(text, yesLabel = 'Confirm') {
  const dialog = document.getElementById('confirm');
  const yes = document.getElementById('confirm-yes');
  document.getElementById('confirm-text').textContent = text;
  yes.textContent = yesLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    dialog.showModal();
    document.getElementById('confirm-no').focus();
  });
}
