// The login page's only script: shows the error line when the server sent us back with
// `?error=1` (a wrong token, or a used or expired one-time link). It imports nothing, because
// the server serves only login.html, login.js and console.css without a session.

const params = new URLSearchParams(location.search);
const error = document.getElementById('login-error');
const token = document.getElementById('token');
if (params.get('error') === '1' && error) {
  error.hidden = false;
  token?.setAttribute('aria-invalid', 'true');
}
token?.focus();
