// DPoP (RFC 9449) with panva's oauth4webapi as the client, against a real Sigil started
// with --dpop-nonce: client_credentials, the authorization code flow with dpop_jkt and
// PKCE, userinfo, a refresh, and (when given) a call to a resource server, each with
// proofs the library makes, retrying once when the server asks for a fresh nonce.
//
// argv: issuer, public client id, service client id, service client secret, callback,
// and optionally a protected resource URL. Talks JSON lines: prints
// {"authorize": url}, reads the callback URL the test's "browser" reached, and ends with
// {"result": {...}}.
import * as oauth from 'oauth4webapi';
import { createInterface } from 'node:readline';

const [issuerText, appId, serviceId, serviceSecret, callback, resource] = process.argv.slice(2);
const issuer = new URL(issuerText);
const insecure = { [oauth.allowInsecureRequests]: true };
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (value) => process.stdout.write(JSON.stringify(value) + '\n');

// Sends a request and processes its answer; when the server wants a (new) nonce, the
// handle has kept the one it sent, and the request goes again, once.
let nonceRetries = 0;
async function withNonce(send, processAnswer) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await processAnswer(await send());
    } catch (err) {
      if (oauth.isDPoPNonceError(err) && attempt === 0) {
        nonceRetries++;
        continue;
      }
      throw err;
    }
  }
}

const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
);
const result = { discovery_algs: as.dpop_signing_alg_values_supported };

// client_credentials with the service's own key.
const service = { client_id: serviceId };
const serviceDpop = oauth.DPoP(service, await oauth.generateKeyPair('ES256'));
const cc = await withNonce(
  () =>
    oauth.clientCredentialsGrantRequest(
      as,
      service,
      oauth.ClientSecretBasic(serviceSecret),
      new URLSearchParams(),
      { DPoP: serviceDpop, ...insecure },
    ),
  (response) => oauth.processClientCredentialsResponse(as, service, response),
);
result.client_credentials = {
  token_type: cc.token_type,
  access_token: cc.access_token,
  jkt: await serviceDpop.calculateThumbprint(),
};

// The code flow for the public app, its code bound to its key with dpop_jkt.
const app = { client_id: appId };
const appDpop = oauth.DPoP(app, await oauth.generateKeyPair('ES256'));
const jkt = await appDpop.calculateThumbprint();
const verifier = oauth.generateRandomCodeVerifier();
const state = oauth.generateRandomState();
const authorize = new URL(as.authorization_endpoint);
authorize.searchParams.set('client_id', appId);
authorize.searchParams.set('redirect_uri', callback);
authorize.searchParams.set('response_type', 'code');
authorize.searchParams.set('scope', 'openid offline_access');
authorize.searchParams.set('state', state);
authorize.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
authorize.searchParams.set('code_challenge_method', 'S256');
authorize.searchParams.set('dpop_jkt', jkt);
say({ authorize: authorize.href });
const reached = (await lines.next()).value;
const params = oauth.validateAuthResponse(as, app, new URL(reached), state);
const tokens = await withNonce(
  () =>
    oauth.authorizationCodeGrantRequest(as, app, oauth.None(), params, callback, verifier, {
      DPoP: appDpop,
      ...insecure,
    }),
  (response) => oauth.processAuthorizationCodeResponse(as, app, response),
);
const claims = oauth.getValidatedIdTokenClaims(tokens);
result.code = { token_type: tokens.token_type, access_token: tokens.access_token, jkt };

const info = await withNonce(
  () => oauth.userInfoRequest(as, app, tokens.access_token, { DPoP: appDpop, ...insecure }),
  (response) => oauth.processUserInfoResponse(as, app, claims.sub, response),
);
result.userinfo = info;

const refreshed = await withNonce(
  () =>
    oauth.refreshTokenGrantRequest(as, app, oauth.None(), tokens.refresh_token, {
      DPoP: appDpop,
      ...insecure,
    }),
  (response) => oauth.processRefreshTokenResponse(as, app, response),
);
result.refresh = { token_type: refreshed.token_type, access_token: refreshed.access_token };

if (resource) {
  const response = await oauth.protectedResourceRequest(
    cc.access_token,
    'GET',
    new URL(resource),
    new Headers(),
    null,
    { DPoP: serviceDpop, ...insecure },
  );
  result.resource = { status: response.status, body: await response.text() };
}
result.nonce_retries = nonceRetries;
say({ result });
process.exit(0);
