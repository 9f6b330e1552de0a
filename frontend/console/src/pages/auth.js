// Signing in, accepting an invitation, resetting a password, and the platform admin's sign-in.
// Every form keeps what the person typed when the platform says no.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { adopt } from "../session.js";
import { html, ErrorMessage, Field, Loading, useAction, refuse, useLoad, go } from "../ui.js";

function AuthFrame({ title, children, intro }) {
  document.title = `${title} · avatarchat console`;
  return html`<main id="main" class="auth">
    <div class="auth-card">
      <p class="brand" aria-hidden="true">avatarchat</p>
      <h1 tabindex="-1" id="page-title">${title}</h1>
      ${intro ? html`<p class="intro">${intro}</p>` : null}
      ${children}
    </div>
  </main>`;
}

function messageFor(error) {
  if (error.code === "too_many_attempts") return "Too many attempts. Wait a few minutes, then try again.";
  return error.message;
}

export function SignIn({ onSignedIn }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const { run, error, busy } = useAction(messageFor);
  const submit = run(async () => {
    const info = await api("/api/v1/auth/login", { method: "POST", body: { email, password }, quiet401: true });
    onSignedIn(adopt(info));
  });
  return html`<${AuthFrame} title="Sign in">
    <form onSubmit=${submit} aria-describedby=${error ? "signin-error" : undefined}>
      <${Field} label="Email" type="email" value=${email} onInput=${setEmail} autocomplete="username" required />
      <${Field} label="Password" type="password" value=${password} onInput=${setPassword} autocomplete="current-password" required />
      <${ErrorMessage} error=${error} id="signin-error" />
      <button type="submit" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button>
    </form>
    <p class="aside">Forgot your password? Ask an owner of your workspace for a reset link.</p>
    <p class="aside"><a href="#/admin/login">Platform admin sign-in</a></p>
  </${AuthFrame}>`;
}

/** A new password the person typed twice: the same, and long enough (the API's rule). */
function newPassword(password, confirm) {
  if (password !== confirm) refuse("The two passwords are not the same.");
  if (password.length < 10) refuse("Choose a password of at least 10 characters.");
}

function linkProblem(error, kind) {
  if (error.code === `${kind}_expired`) return `This ${kind === "invite" ? "invitation" : "reset link"} has expired. Ask an owner of the workspace for a new one.`;
  if (error.code === `${kind}_used`) return `This ${kind === "invite" ? "invitation" : "reset link"} has already been used. Ask an owner for a new one, or sign in.`;
  if (error.status === 404) return `This ${kind === "invite" ? "invitation" : "reset link"} is not valid. Check that you copied the whole link.`;
  return error.message;
}

export function AcceptInvite({ token, onSignedIn }) {
  const invite = useLoad(() => api(`/api/v1/auth/invites/${encodeURIComponent(token)}`, { quiet401: true }), [token]);
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const { run, error, busy } = useAction((err) => (err.code === "invalid_credentials"
    ? "That is not the password of your existing account." : linkProblem(err, "invite")));
  if (invite.loading) return html`<${AuthFrame} title="Accept your invitation"><${Loading} /></${AuthFrame}>`;
  if (invite.error) {
    return html`<${AuthFrame} title="Accept your invitation">
      <${ErrorMessage} error=${linkProblem(invite.error, "invite")} />
      <p><a href="#/login">Go to sign in</a></p></${AuthFrame}>`;
  }
  const info = invite.data;
  const existing = info.existing_user;
  const submit = run(async () => {
    if (!existing) newPassword(password, confirm);
    const session = await api(`/api/v1/auth/invites/${encodeURIComponent(token)}/accept`,
      { method: "POST", body: { password }, quiet401: true });
    onSignedIn(adopt(session));
    go("#/chatbots");
  });
  return html`<${AuthFrame} title="Accept your invitation"
      intro=${`${info.email} is invited to ${info.tenant_name} as ${info.role}.`}>
    <form onSubmit=${submit}>
      <input type="email" name="email" value=${info.email} autocomplete="username" readonly hidden />
      ${existing
        ? html`<${Field} label="Your current password" type="password" value=${password} onInput=${setPassword}
            autocomplete="current-password" required hint="You already have an account: confirm it with its password." />`
        : html`<${Field} label="Choose a password" type="password" value=${password} onInput=${setPassword}
              autocomplete="new-password" required minlength="10" hint="At least 10 characters." />
            <${Field} label="Repeat the password" type="password" value=${confirm} onInput=${setConfirm}
              autocomplete="new-password" required />`}
      <${ErrorMessage} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? "Joining…" : `Join ${info.tenant_name}`}</button>
    </form>
  </${AuthFrame}>`;
}

export function ResetPassword({ token }) {
  const reset = useLoad(() => api(`/api/v1/auth/resets/${encodeURIComponent(token)}`, { quiet401: true }), [token]);
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [done, setDone] = useState(false);
  const { run, error, busy } = useAction((err) => linkProblem(err, "reset"));
  if (reset.loading) return html`<${AuthFrame} title="Choose a new password"><${Loading} /></${AuthFrame}>`;
  if (done) {
    return html`<${AuthFrame} title="Password changed">
      <p role="status">Your password is changed, and your other sessions are signed out.</p>
      <p><a href="#/login">Sign in with the new password</a></p></${AuthFrame}>`;
  }
  if (reset.error) {
    return html`<${AuthFrame} title="Choose a new password">
      <${ErrorMessage} error=${linkProblem(reset.error, "reset")} />
      <p><a href="#/login">Go to sign in</a></p></${AuthFrame}>`;
  }
  const submit = run(async () => {
    newPassword(password, confirm);
    await api(`/api/v1/auth/resets/${encodeURIComponent(token)}`, { method: "POST", body: { password }, quiet401: true });
    setDone(true);
  });
  return html`<${AuthFrame} title="Choose a new password" intro=${`For ${reset.data.email}.`}>
    <form onSubmit=${submit}>
      <input type="email" name="email" value=${reset.data.email} autocomplete="username" readonly hidden />
      <${Field} label="New password" type="password" value=${password} onInput=${setPassword}
        autocomplete="new-password" required minlength="10" hint="At least 10 characters." />
      <${Field} label="Repeat the new password" type="password" value=${confirm} onInput=${setConfirm}
        autocomplete="new-password" required />
      <${ErrorMessage} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? "Saving…" : "Save the new password"}</button>
    </form>
  </${AuthFrame}>`;
}

export function AdminSignIn({ onSignedIn }) {
  const [key, setKey] = useState("");
  const { run, error, busy } = useAction((err) => (err.status === 401 ? "That admin key is not right." : messageFor(err)));
  const submit = run(async () => {
    const info = await api("/api/v1/auth/admin-login", { method: "POST", body: { admin_key: key }, quiet401: true });
    setKey(""); // the key is not kept anywhere once it has opened a session
    onSignedIn(adopt(info));
    go("#/admin");
  });
  return html`<${AuthFrame} title="Platform admin sign-in"
      intro="Sign in once with the platform's ADMIN_API_KEY; the console then uses a session.">
    <form onSubmit=${submit}>
      <${Field} label="Admin key" type="password" value=${key} onInput=${setKey} autocomplete="off" required />
      <${ErrorMessage} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? "Signing in…" : "Sign in as admin"}</button>
    </form>
    <p class="aside"><a href="#/login">Tenant sign-in</a></p>
  </${AuthFrame}>`;
}
