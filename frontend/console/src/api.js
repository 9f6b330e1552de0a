// Every call the console makes goes through here: same-origin fetch with the session cookie,
// the CSRF token on every state-changing request, and errors as ApiError with the API's own
// code and message. The CSRF token lives in this module's memory only, never in storage: a
// reload asks GET /api/v1/auth/session for it again.

let csrfToken = null;
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function setCsrf(token) {
  csrfToken = token || null;
}

/** Called when a request comes back 401: the session ended (logout elsewhere, expiry). */
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

export async function api(path, { method = "GET", body, form, quiet401 = false } = {}) {
  const headers = { Accept: "application/json" };
  if (!SAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let payload;
  if (form) payload = form; // multipart: the browser sets the boundary
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin", cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", "We can't reach the platform right now. Check your connection and try again.");
  }
  let data = null;
  if (response.status !== 204) {
    const text = await response.text();
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
  }
  if (response.ok) return data;
  const error = (data && data.error) || {};
  if (response.status === 401 && !quiet401) onSignedOut();
  throw new ApiError(response.status, error.code || "error", friendly(response.status, error), error.details);
}

/** The API's message when it has one, else a sentence a person can act on. */
function friendly(status, error) {
  if (status === 413) return error.message || "That file is too large.";
  if (status === 429) return error.message || "Too many attempts. Wait a moment and try again.";
  if (status === 403 && error.code === "insufficient_role") return "Your role does not allow this change.";
  if (status === 403 && error.code === "csrf_failed") return "Your session could not be verified. Reload the page and try again.";
  if (status >= 500) return "The platform had a problem. Please try again in a moment.";
  if (error.code === "validation_error" && Array.isArray(error.details) && error.details.length) {
    const first = error.details[0];
    const where = Array.isArray(first.loc) ? first.loc.filter((p) => p !== "body").join(" → ") : "";
    return `${where ? `${where}: ` : ""}${first.msg || error.message}`;
  }
  return error.message || `The request failed (HTTP ${status}).`;
}

export const get = (path) => api(path);
export const post = (path, body) => api(path, { method: "POST", body });
export const patch = (path, body) => api(path, { method: "PATCH", body });
export const put = (path, body) => api(path, { method: "PUT", body });
export const del = (path) => api(path, { method: "DELETE" });
export const upload = (path, form, method = "POST") => api(path, { method, form });
