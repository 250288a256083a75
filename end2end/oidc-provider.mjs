#!/usr/bin/env node
// A throw-away OpenID Provider for meshport's tests, built on npm `oidc-provider` 9.x.
// Test use only: keys, cookie keys and all state live in memory and die with the process.
//
//   node oidc-provider.mjs [PORT]          (PORT 0 or unset: a free port is chosen)
//
// Environment (all optional):
//   OIDC_PORT                      port when no argument is given (default 0 = any free port)
//   OIDC_HOST                      bind address (default 127.0.0.1); the issuer is http://HOST:PORT
//   OIDC_CLIENT_ID                 (default "meshport")
//   OIDC_CLIENT_SECRET             (default "meshport-test-secret")
//   OIDC_CLIENT_AUTH_METHOD        client_secret_basic (default) or client_secret_post
//   OIDC_REDIRECT_URIS             comma/space separated (default http://127.0.0.1:3000/auth/callback)
//   OIDC_POST_LOGOUT_REDIRECT_URIS comma/space separated (default: none registered)
//   OIDC_USERS_FILE                JSON array of {sub, email, name, groups, password} (default: one demo user)
//   OIDC_GROUPS_CLAIM              name of the claim carrying the groups (default "groups")
//   OIDC_CLAIMS_IN_ID_TOKEN        "1" (default): scope claims (email, name, groups) also go into the
//                                  ID token; "0": only UserInfo has them (oidc-provider's default)
//   OIDC_ID_TOKEN_TTL              ID token lifetime in seconds (default 300)
//   OIDC_ACCESS_TOKEN_TTL          access token lifetime in seconds (default 600)
//
// Prints "READY <issuer>" on stdout once it listens. Stops on SIGTERM/SIGINT.
//
// Test hook: POST /__test/next-id-token with a JSON body changes the ID token of the NEXT
// successful token response (one-shot, queued in order):
//   {"claims": {"nonce": "other"}}   override/add claims, re-signed with the provider key
//   {"exp_offset": -60}              exp = now - 60 (an expired but validly signed token)
//   {"tamper": "signature"}          flip the signature (payload unchanged)
//   {"tamper": "alg-none"}           header alg "none", no signature
// DELETE /__test/next-id-token clears the queue.
// POST /__test/users/<sub> with {"groups": [...]} and/or {"disabled": true} changes a user as an
// administrator would at the provider (a disabled user's refresh tokens are refused).
// POST /__test/rotate-keys signs with a new key (a new key id) from now on; the previous key
// stays published beside it for tokens already issued, as providers rotate keys.
//
// Refresh tokens are issued to the client (it allows the refresh_token grant) and outlive the
// browser session, like `offline_access` tokens, for meshport's re-validation.

import http from 'node:http';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// `import 'oidc-provider'` works when this file sits in a tree with node_modules; otherwise the
// package is looked up from OIDC_NODE_MODULES_FROM (a directory) or the working directory.
async function load(name) {
  try {
    return await import(name);
  } catch (error) {
    if (error.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    const from = process.env.OIDC_NODE_MODULES_FROM || process.cwd();
    const resolved = createRequire(join(from, 'noop.js')).resolve(name);
    return import(pathToFileURL(resolved).href);
  }
}
const { default: Provider } = await load('oidc-provider');

const env = process.env;
const list = (value) => (value || '').split(/[\s,]+/).filter(Boolean);
const host = env.OIDC_HOST || '127.0.0.1';
const requestedPort = Number(process.argv[2] ?? env.OIDC_PORT ?? 0);
const clientId = env.OIDC_CLIENT_ID || 'meshport';
const clientSecret = env.OIDC_CLIENT_SECRET || 'meshport-test-secret';
const authMethod = env.OIDC_CLIENT_AUTH_METHOD || 'client_secret_basic';
const redirectUris = list(env.OIDC_REDIRECT_URIS || 'http://127.0.0.1:3000/auth/callback');
const postLogoutRedirectUris = list(env.OIDC_POST_LOGOUT_REDIRECT_URIS);
const groupsClaim = env.OIDC_GROUPS_CLAIM || 'groups';
const claimsInIdToken = (env.OIDC_CLAIMS_IN_ID_TOKEN ?? '1') !== '0';
const idTokenTtl = Number(env.OIDC_ID_TOKEN_TTL || 300);
const accessTokenTtl = Number(env.OIDC_ACCESS_TOKEN_TTL || 600);

const users = env.OIDC_USERS_FILE
  ? JSON.parse(readFileSync(env.OIDC_USERS_FILE, 'utf8'))
  : [{ sub: 'alice', email: 'alice@example.test', name: 'Alice Example', groups: ['developers', 'team-payments'], password: 'alice-password' }];
const bySub = new Map(users.map((user) => [user.sub, user]));
const findUser = (login) => users.find((user) => user.sub === login
  || (user.email && user.email.toLowerCase() === String(login).toLowerCase()));
const sameSecret = (a, b) => {
  const x = crypto.createHash('sha256').update(String(a)).digest();
  const y = crypto.createHash('sha256').update(String(b)).digest();
  return crypto.timingSafeEqual(x, y);
};

// The RSA signing key (rotated by the test hook; the newest signs, also the test hook's
// re-signed ID tokens) and the previous one, still published.
let privateKey;
let signingJwks = [];
function newSigningKey() {
  ({ privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }));
  const kid = crypto.randomBytes(8).toString('hex');
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  signingJwks = [jwk, ...signingJwks].slice(0, 2);
}
newSigningKey();

const escape = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));
const page = (title, body) => `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;max-width:24rem;margin:3rem auto}label,input,button{display:block;width:100%;margin:.4rem 0}.error{color:#b00}</style>
</head><body><h1>${escape(title)}</h1>${body}</body></html>`;
const loginPage = (uid, error, login) => page('Sign in', `
${error ? `<p class="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
  <label for="login">Login (user id or email)</label>
  <input id="login" name="login" type="text" required autofocus value="${escape(login)}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button type="submit" id="sign-in">Sign in</button>
</form>
<p><a href="/interaction/${escape(uid)}/abort">Cancel</a></p>`);

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: authMethod,
  }],
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: [groupsClaim],
  },
  conformIdTokenClaims: !claimsInIdToken,
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  async expiresWithSession() {
    return false;
  },
  async findAccount(ctx, sub) {
    const user = bySub.get(sub);
    if (!user || user.disabled) return undefined;
    return {
      accountId: user.sub,
      async claims() {
        return {
          sub: user.sub,
          email: user.email,
          email_verified: true,
          name: user.name,
          preferred_username: user.sub,
          [groupsClaim]: user.groups ?? [],
        };
      },
    };
  },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  ttl: {
    IdToken: idTokenTtl,
    AccessToken: accessTokenTtl,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: 86400,
    RefreshToken: 86400,
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.type = 'html';
        ctx.body = page('Sign out', `${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes" id="sign-out">Yes, sign me out</button>
<button type="submit" form="op.logoutForm" id="stay">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<p>You have been signed out.</p>');
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<p id="error">${escape(out.error)}</p><p>${escape(out.error_description)}</p>`);
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
};

// --- test hook: mutate the next ID token --------------------------------------------------------
const mutations = [];
const b64url = (value) => Buffer.from(value).toString('base64url');
function mutateIdToken(jwt, mutation) {
  const [h, p, s] = jwt.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  const resign = mutation.claims !== undefined || typeof mutation.exp_offset === 'number';
  Object.assign(payload, mutation.claims ?? {});
  if (typeof mutation.exp_offset === 'number') {
    payload.exp = Math.floor(Date.now() / 1000) + mutation.exp_offset;
  }
  if (mutation.tamper === 'alg-none') {
    return `${b64url(JSON.stringify({ ...header, alg: 'none' }))}.${b64url(JSON.stringify(payload))}.`;
  }
  const input = resign ? `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}` : `${h}.${p}`;
  let signature = resign ? crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url') : s;
  if (mutation.tamper === 'signature') {
    const bytes = Buffer.from(signature, 'base64url');
    bytes[0] ^= 0xff;
    signature = bytes.toString('base64url');
  }
  return `${input}.${signature}`;
}

// --- HTTP ----------------------------------------------------------------------------------------
const readBody = (req) => new Promise((resolve, reject) => {
  let data = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => {
    data += chunk;
    if (data.length > 65536) reject(new Error('body too large'));
  });
  req.on('end', () => resolve(data));
  req.on('error', reject);
});
const send = (res, status, body, type = 'text/html; charset=utf-8') => {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
};

let provider;
let providerCallback;

// Grants every requested OpenID scope, so no consent screen ever appears (a first-party client).
async function grantFor(details, accountId) {
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope || 'openid'));
  return grant.save();
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page('Error', '<p>interaction mismatch</p>'));
  const { prompt } = details;
  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (prompt.name === 'consent') {
    const grantId = await grantFor(details, details.session.accountId);
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (prompt.name !== 'login') return send(res, 501, page('Error', '<p>unsupported prompt</p>'));
  if (req.method === 'GET' && !action) return send(res, 200, loginPage(uid, '', details.params.login_hint));
  if (req.method !== 'POST' || action !== 'login') return send(res, 405, page('Error', '<p>method not allowed</p>'));
  const form = new URLSearchParams(await readBody(req));
  const user = findUser(form.get('login') ?? '');
  if (!user || !sameSecret(user.password, form.get('password') ?? '')) {
    return send(res, 401, loginPage(uid, 'Invalid login or password.', form.get('login')));
  }
  const grantId = await grantFor(details, user.sub);
  return provider.interactionFinished(req, res, {
    login: { accountId: user.sub },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://placeholder');
  const match = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/);
  if (match) return interaction(req, res, match[1], match[2]);
  if (url.pathname === '/__test/next-id-token') {
    if (req.method === 'POST') {
      mutations.push(JSON.parse((await readBody(req)) || '{}'));
      return send(res, 204, '');
    }
    if (req.method === 'DELETE') {
      mutations.length = 0;
      return send(res, 204, '');
    }
    return send(res, 405, '');
  }
  const userHook = url.pathname.match(/^\/__test\/users\/([^/]+)$/);
  if (userHook && req.method === 'POST') {
    const user = bySub.get(decodeURIComponent(userHook[1]));
    if (!user) return send(res, 404, '');
    const change = JSON.parse((await readBody(req)) || '{}');
    if (Array.isArray(change.groups)) user.groups = change.groups.map(String);
    if (typeof change.disabled === 'boolean') user.disabled = change.disabled;
    return send(res, 204, '');
  }
  if (url.pathname === '/__test/rotate-keys' && req.method === 'POST') {
    newSigningKey();
    startProvider(provider.issuer);
    return send(res, 204, '');
  }
  return providerCallback(req, res);
}

// (Re)creates the provider with the current signing key. Grants, codes and tokens live in the
// module-wide memory adapter, so they outlive a key rotation.
function startProvider(issuer) {
  provider = new Provider(issuer, { ...configuration, jwks: { keys: signingJwks } });
  // Post-processing of the token endpoint for the test hook.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'token' && ctx.status === 200 && ctx.body?.id_token && mutations.length) {
      ctx.body = { ...ctx.body, id_token: mutateIdToken(ctx.body.id_token, mutations.shift()) };
    }
  });
  providerCallback = provider.callback();
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((error) => {
    console.error(error);
    if (!res.headersSent) send(res, 400, page('Error', `<p id="error">${escape(error.name)}: ${escape(error.message)}</p>`));
    else res.end();
  });
});

server.listen(requestedPort, host, () => {
  const { port } = server.address();
  const issuer = `http://${host}:${port}`;
  startProvider(issuer);
  console.log(`READY ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
