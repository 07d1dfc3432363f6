// A relying party on openid-client (v6) that uses a pushed authorization request, for
// tests/par.rs. Arguments: issuer, client id, client secret, redirect URI.
// It prints {"authorize": URL} (the URL openid-client built after pushing the request), reads
// the callback URL the browser reached from standard input, redeems the code with the
// library's own checks and prints what it learnt as one JSON line.
import * as client from 'openid-client'
import { createInterface } from 'node:readline'

const [issuer, clientId, clientSecret, redirectUri] = process.argv.slice(2)

const config = await client.discovery(
  new URL(issuer),
  clientId,
  undefined,
  client.ClientSecretBasic(clientSecret),
  // The test server runs on http://127.0.0.1.
  { execute: [client.allowInsecureRequests] },
)
if (!config.serverMetadata().pushed_authorization_request_endpoint) {
  throw new Error('discovery names no pushed_authorization_request_endpoint')
}

const verifier = client.randomPKCECodeVerifier()
const state = client.randomState()
const nonce = client.randomNonce()
const authorize = await client.buildAuthorizationUrlWithPAR(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile email',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
})
console.log(JSON.stringify({ authorize: authorize.href }))

const lines = createInterface({ input: process.stdin })
let callback
for await (const line of lines) {
  callback = line.trim()
  break
}
lines.close()

const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
})
const claims = tokens.claims()
console.log(
  JSON.stringify({
    iss: claims.iss,
    aud: claims.aud,
    sub: claims.sub,
    email: claims.email,
    token_type: tokens.token_type,
  }),
)
