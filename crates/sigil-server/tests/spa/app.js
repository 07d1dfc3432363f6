// A single-page app with no build step: oidc-client-ts (its browser bundle, the global
// `oidc`) signs in at Sigil with the code flow and PKCE, keeps the user in sessionStorage,
// calls todo-api with the access token and refreshes through Sigil's token endpoint. Every
// result and error lands in an element with an id, for the browser test to read.
"use strict";

const REQUEST_LOG = "spa.requests";

// Every fetch to another origin (oidc-client-ts's and ours) is listed on the page with its
// method, URL, grant type and outcome, so the test can see which endpoint did what. No
// token is ever written down.
const pageFetch = window.fetch.bind(window);
window.fetch = async (input, init = {}) => {
  const url = new URL(typeof input === "string" ? input : input.url, location.href);
  if (url.origin === location.origin) {
    return pageFetch(input, init);
  }
  const method = (init.method || "GET").toUpperCase();
  const grant = init.body instanceof URLSearchParams ? init.body.get("grant_type") : null;
  const what = `${method} ${url.origin}${url.pathname}${grant ? ` grant_type=${grant}` : ""}`;
  try {
    const response = await pageFetch(input, init);
    logRequest(`${what} -> ${response.status}`);
    return response;
  } catch (error) {
    logRequest(`${what} -> failed: ${error.message}`);
    throw error;
  }
};

function logRequest(line) {
  const lines = JSON.parse(sessionStorage.getItem(REQUEST_LOG) || "[]");
  lines.push(line);
  sessionStorage.setItem(REQUEST_LOG, JSON.stringify(lines));
  showRequests();
}

function showRequests() {
  const list = document.getElementById("requests");
  list.replaceChildren(
    ...JSON.parse(sessionStorage.getItem(REQUEST_LOG) || "[]").map((line) => {
      const item = document.createElement("li");
      item.textContent = line;
      return item;
    }),
  );
}

function show(id, text) {
  const element = document.getElementById(id);
  if (element) {
    element.textContent = text;
  }
}

function showError(error) {
  // oidc-client-ts's ErrorResponse carries the OAuth error code; fetch's TypeError does not.
  const code = error && error.error ? ` (${error.error})` : "";
  show("error", `${error && error.name}: ${error && error.message}${code}`);
}

// The claims of a JWT, unverified: only to tell one access token from the next.
function claimsOf(jwt) {
  const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
}

function showUser(user) {
  if (!user) {
    show("status", "signed out");
    return;
  }
  show("status", "signed in");
  show("user", user.profile.preferred_username || user.profile.sub);
  show("access-token", claimsOf(user.access_token).jti);
}

async function callTodoApi(config, user, method, body) {
  const response = await fetch(`${config.todo_api}/api/todos`, {
    method,
    headers: {
      Authorization: `Bearer ${user.access_token}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  show("api-status", `${method} ${response.status}`);
  show("api-token", claimsOf(user.access_token).jti);
  if (!response.ok) {
    throw new Error(`todo-api answered ${response.status}: ${await response.text()}`);
  }
  return response.json();
}

function showTodos(todos) {
  document.getElementById("todos").replaceChildren(
    ...todos.map((todo) => {
      const item = document.createElement("li");
      item.textContent = todo.title;
      return item;
    }),
  );
}

async function main() {
  showRequests();
  const config = await (await fetch("/config.json")).json();
  const userManager = new oidc.UserManager({
    authority: config.authority,
    client_id: config.client_id,
    redirect_uri: `${location.origin}/callback.html`,
    response_type: "code",
    scope: "openid profile offline_access todos:read todos:write",
    userStore: new oidc.WebStorageStateStore({ store: window.sessionStorage }),
    // The profile comes from /userinfo too: a cross-origin GET with a bearer token.
    loadUserInfo: true,
    // Nothing happens behind the test's back: no timer-driven renewal, no session iframe.
    automaticSilentRenew: false,
    monitorSession: false,
  });

  if (document.body.dataset.page === "callback") {
    try {
      await userManager.signinRedirectCallback();
      location.replace("/");
    } catch (error) {
      show("status", "sign-in failed");
      showError(error);
    }
    return;
  }

  let user = await userManager.getUser();
  showUser(user);
  let refreshToken = user && user.refresh_token;
  let refreshes = 0;

  // Each button reports its outcome, and clears the last error when it starts.
  const on = (id, event, action) =>
    document.getElementById(id).addEventListener(event, async (e) => {
      e.preventDefault();
      show("error", "");
      try {
        await action();
      } catch (error) {
        showError(error);
      }
    });

  on("sign-in", "click", () => userManager.signinRedirect());
  on("load-todos", "click", async () => {
    showTodos(await callTodoApi(config, user, "GET"));
  });
  on("new-todo", "submit", async () => {
    const title = document.getElementById("todo-title").value;
    await callTodoApi(config, user, "POST", { title });
    showTodos(await callTodoApi(config, user, "GET"));
  });
  on("refresh", "click", async () => {
    // signinSilent uses the refresh token grant when the user has a refresh token, and
    // otherwise falls back to a hidden iframe with prompt=none at silent_redirect_uri
    // (which defaults to redirect_uri). This app refreshes with the refresh token only.
    const current = await userManager.getUser();
    if (!current || !current.refresh_token) {
      throw new Error("no refresh token: sign in again");
    }
    user = await userManager.signinSilent();
    refreshes += 1;
    show("refresh-count", String(refreshes));
    show("refresh-rotation", user.refresh_token !== refreshToken ? "rotated" : "unchanged");
    refreshToken = user.refresh_token;
    showUser(user);
  });
  on("revoke", "click", async () => {
    await userManager.revokeTokens(["refresh_token"]);
    show("refresh-rotation", "revoked");
  });
}

main().catch((error) => {
  show("status", "failed to start");
  showError(error);
});
