// The MCP TypeScript SDK's OAuth client flow against a resource server protected by
// sigil-verify (todo-api) and Sigil: discovery from the 401 (RFC 9728), authorization
// server metadata (RFC 8414), dynamic registration (RFC 7591), PKCE, `resource`
// (RFC 8707), the code exchange, the protected call, and a refresh.
//
// Usage: node oauth_flow.mjs <resource URL to call> <redirect URI>
// It prints one JSON line per step on standard output: {"authorize": URL} when the user
// must sign in (the test answers with the callback URL on standard input), then
// {"done": …} with what it saw. Anything unexpected ends it with a non-zero status.

import {
  auth,
  extractResourceMetadataUrl,
} from "@modelcontextprotocol/sdk/client/auth.js";
import { createInterface } from "node:readline";

const [apiUrl, redirectUri] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function say(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

class MemoryProvider {
  constructor() {
    this.client = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.discovery = undefined;
  }
  get redirectUrl() {
    return redirectUri;
  }
  get clientMetadata() {
    return {
      client_name: "MCP SDK test client",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      // Not part of RFC 7591: an authorization server must ignore it.
      sdk_test_marker: "ignored",
    };
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
  }
  async redirectToAuthorization(url) {
    say({ authorize: url.href });
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
  saveDiscoveryState(state) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
}

const provider = new MemoryProvider();

// 1. The resource answers 401 and names its metadata.
const first = await fetch(apiUrl);
if (first.status !== 401) {
  throw new Error(`expected 401 from ${apiUrl}, got ${first.status}`);
}
const challenge = first.headers.get("www-authenticate");
const resourceMetadataUrl = extractResourceMetadataUrl(first);
if (!resourceMetadataUrl) {
  throw new Error(`no resource_metadata in WWW-Authenticate: ${challenge}`);
}
const serverUrl = new URL(apiUrl).origin;

// 2. Discovery, registration and the authorization request.
const started = await auth(provider, { serverUrl, resourceMetadataUrl });
if (started !== "REDIRECT") {
  throw new Error(`expected REDIRECT, got ${started}`);
}

// 3. The test signs the user in and hands back the callback URL.
const { value: callback } = await lines.next();
const code = new URL(callback).searchParams.get("code");
if (!code) {
  throw new Error(`no code in ${callback}`);
}
const finished = await auth(provider, {
  serverUrl,
  resourceMetadataUrl,
  authorizationCode: code,
});
if (finished !== "AUTHORIZED") {
  throw new Error(`expected AUTHORIZED, got ${finished}`);
}
const firstTokens = provider.tokens();

// 4. The protected call.
const call = await fetch(apiUrl, {
  headers: { Authorization: `Bearer ${firstTokens.access_token}` },
});
const callBody = await call.text();

// 5. A refresh through the SDK, and the call again with the new token.
const refreshed = await auth(provider, { serverUrl, resourceMetadataUrl });
const secondTokens = provider.tokens();
const again = await fetch(apiUrl, {
  headers: { Authorization: `Bearer ${secondTokens.access_token}` },
});

say({
  done: true,
  challenge,
  resource_metadata_url: resourceMetadataUrl.href,
  authorization_server: provider.discovery?.authorizationServerUrl,
  client: provider.client,
  first_access_token: firstTokens.access_token,
  scope: firstTokens.scope,
  has_refresh_token: Boolean(firstTokens.refresh_token),
  call_status: call.status,
  call_body: callBody,
  refreshed,
  rotated: secondTokens.refresh_token !== firstTokens.refresh_token,
  second_call_status: again.status,
});
process.exit(0);
