// The signed-in person, as GET /api/v1/auth/session describes them, shared through a context.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { get, post, setCsrf } from "./api.js";

export const SessionContext = createContext(null);

export function useSession() {
  return useContext(SessionContext);
}

/** What the role allows, for showing or hiding controls (the API decides for real). */
export function can(session, what) {
  const role = session && session.tenant ? session.tenant.role : null;
  if (what === "edit") return role === "owner" || role === "editor";
  if (what === "manage") return role === "owner";
  return Boolean(role);
}

export async function loadSession() {
  try {
    const info = await get("/api/v1/auth/session");
    setCsrf(info.csrf_token);
    return info;
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

export function adopt(info) {
  setCsrf(info && info.csrf_token);
  return info;
}

export async function logout() {
  try {
    await post("/api/v1/auth/logout");
  } finally {
    setCsrf(null);
  }
}
