// A Keycloak-like OpenID Connect realm for visa-hub tests.
//
// Built on the certified `oidc-provider` package and laid out like Keycloak:
//   issuer        http://127.0.0.1:<port>/realms/<realm>
//   discovery     /realms/<realm>/.well-known/openid-configuration
//   endpoints     /realms/<realm>/protocol/openid-connect/{auth,token,userinfo,certs,logout,revoke,token/introspect}
//   login page    /realms/<realm>/login-actions/authenticate/<uid>  (form ids: username, password, kc-login)
//
// Claims follow Keycloak's shapes (sub is a UUID, preferred_username, realm_access.roles,
// resource_access.<client>.roles) in the ID token, the access token (a signed JWT, as Keycloak issues)
// and the userinfo response.
//
// Usage: node server.mjs <config.json>
// On start one JSON line is printed to stdout: {"ready": true, "issuer": ..., "port": ...}.
// See README.md in this directory for the configuration format.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node server.mjs <config.json>');
  process.exit(2);
}
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));

const host = config.host ?? '127.0.0.1';
const realm = config.realm ?? 'ess';
const prefix = `/realms/${realm}`;
const ttl = {
  accessToken: 300,
  idToken: 300,
  refreshToken: 1800,
  session: 36000,
  ...(config.ttl ?? {}),
};

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------
const users = (config.users ?? []).map((user) => ({
  sub: user.sub ?? crypto.randomUUID(),
  email_verified: true,
  realm_roles: [],
  client_roles: {},
  ...user,
}));
const usersBySub = new Map(users.map((user) => [user.sub, user]));

function findUserForLogin(login) {
  const needle = String(login ?? '').trim().toLowerCase();
  // Keycloak lets people sign in with their username or their email address.
  return users.find((user) => user.username.toLowerCase() === needle
    || (user.email ?? '').toLowerCase() === needle);
}

function passwordMatches(user, password) {
  const expected = Buffer.from(String(user.password ?? ''));
  const given = Buffer.from(String(password ?? ''));
  return expected.length === given.length && crypto.timingSafeEqual(expected, given);
}

// The claims Keycloak's default client scopes (profile, email, roles) put in every token.
function keycloakClaims(user) {
  const name = [user.first_name, user.last_name].filter(Boolean).join(' ');
  const resourceAccess = {};
  for (const [clientId, roles] of Object.entries(user.client_roles ?? {})) {
    resourceAccess[clientId] = { roles: [...roles] };
  }
  return {
    sub: user.sub,
    preferred_username: user.username.toLowerCase(),
    email: user.email,
    email_verified: Boolean(user.email_verified),
    ...(name ? { name } : {}),
    ...(user.first_name ? { given_name: user.first_name } : {}),
    ...(user.last_name ? { family_name: user.last_name } : {}),
    realm_access: { roles: [...(user.realm_roles ?? [])] },
    resource_access: resourceAccess,
  };
}

const CLAIM_NAMES = [
  'sub', 'preferred_username', 'email', 'email_verified', 'name', 'given_name', 'family_name',
  'realm_access', 'resource_access',
];

// ---------------------------------------------------------------------------------------------
// Keys and provider configuration
// ---------------------------------------------------------------------------------------------
const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
const { d, p, q, dp, dq, qi, ...publicJwk } = signingJwk;
const verificationKeys = jose.createLocalJWKSet({ keys: [publicJwk] });

const server = http.createServer();
await new Promise((resolve) => { server.listen(config.port ?? 0, host, resolve); });
const { port } = server.address();
const origin = `http://${host}:${port}`;
const issuer = `${origin}${prefix}`;

// Keycloak access tokens are JWTs. oidc-provider issues JWT access tokens for a resource server,
// so every authorization uses this one implicit resource (the audience mimics Keycloak's "account").
const RESOURCE = `${issuer}/account`;
const SCOPES = ['openid', 'profile', 'email', 'roles', 'offline_access'];

const clients = (config.clients ?? []).map((client) => ({
  client_id: client.client_id,
  client_secret: client.client_secret,
  redirect_uris: client.redirect_uris ?? [],
  post_logout_redirect_uris: client.post_logout_redirect_uris ?? [],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}));

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: SCOPES,
  // Keycloak's default client scopes apply whether or not the client asks for them.
  claims: { openid: CLAIM_NAMES },
  conformIdTokenClaims: false, // put the scope claims in the ID token too, as Keycloak does
  async findAccount(_ctx, sub) {
    const user = usersBySub.get(sub);
    if (!user) return undefined;
    return { accountId: sub, claims: async () => keycloakClaims(user) };
  },
  routes: {
    authorization: '/protocol/openid-connect/auth',
    token: '/protocol/openid-connect/token',
    userinfo: '/protocol/openid-connect/userinfo',
    jwks: '/protocol/openid-connect/certs',
    end_session: '/protocol/openid-connect/logout',
    revocation: '/protocol/openid-connect/revoke',
    introspection: '/protocol/openid-connect/token/introspect',
  },
  interactions: {
    url: (_ctx, interaction) => `${prefix}/login-actions/authenticate/${interaction.uid}`,
  },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: renderLogoutPage,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, resourceIndicator) {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: SCOPES.join(' '),
          audience: 'account',
          accessTokenTTL: ttl.accessToken,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  pkce: { required: () => false }, // like Keycloak: optional for confidential clients, S256 only
  // Keycloak hands a confidential client a refresh token with every code exchange.
  issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: false,
  ttl: {
    AccessToken: ttl.accessToken,
    IdToken: ttl.idToken,
    RefreshToken: ttl.refreshToken,
    Session: ttl.session,
    Grant: ttl.session,
    Interaction: 3600,
  },
  formats: {
    customizers: {
      // Keycloak's access token payload.
      async jwt(ctx, token, jwt) {
        const user = usersBySub.get(token.accountId);
        jwt.payload.typ = 'Bearer';
        jwt.payload.azp = token.clientId;
        jwt.payload.scope = [...new Set(['openid', ...String(jwt.payload.scope ?? '').split(' ')])]
          .filter(Boolean).join(' ');
        if (token.sessionUid) jwt.payload.sid = token.sessionUid;
        if (user) Object.assign(jwt.payload, keycloakClaims(user));
        issuedAccessTokens.set(jwt.payload.jti, {
          grantId: token.grantId, sessionUid: token.sessionUid, exp: jwt.payload.exp,
        });
      },
    },
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('We are sorry...', `<p id="kc-error-message">${escapeHtml(out.error_description ?? out.error)}</p>`);
  },
});

// Keycloak's token responses also say how long the refresh token lives.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route === 'token' && ctx.status === 200 && ctx.body?.refresh_token) {
    ctx.body.refresh_expires_in = ttl.refreshToken;
    ctx.body['not-before-policy'] = 0;
  }
});

// jti -> grant of every JWT access token, so the userinfo endpoint can refuse tokens whose grant
// was revoked (logout, refresh token revocation) like Keycloak does for ended sessions.
const issuedAccessTokens = new Map();

// Redirect URI matching as Keycloak does it: exact, or a trailing "*" wildcard; and a loopback
// redirect URI registered without a port matches any port (RFC 8252 section 7.3).
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

function redirectAllowed(value, registered) {
  return registered.some((pattern) => {
    let candidate = value;
    try {
      const want = new URL(pattern.replace(/\*$/, ''));
      const got = new URL(value);
      if (LOOPBACK_HOSTS.has(want.hostname) && !want.port && got.hostname === want.hostname) {
        got.port = '';
        candidate = got.href;
      }
    } catch {
      return false;
    }
    return pattern.endsWith('*') ? candidate.startsWith(pattern.slice(0, -1)) : candidate === pattern;
  });
}
provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  return redirectAllowed(value, this.redirectUris ?? []);
};
provider.Client.prototype.postLogoutRedirectUriAllowed = function postLogoutRedirectUriAllowed(value) {
  return redirectAllowed(value, this.postLogoutRedirectUris ?? []);
};

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------
function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><div id="kc-content"><h1 id="kc-page-title">${escapeHtml(title)}</h1>${body}</div></body></html>`;
}

function loginPage(action, { username = '', error } = {}) {
  return page(`Sign in to ${realm}`, `
<form id="kc-form-login" action="${escapeHtml(action)}" method="post">
  ${error ? `<span id="input-error" class="kc-feedback-text">${escapeHtml(error)}</span>` : ''}
  <label for="username">Username or email</label>
  <input id="username" name="username" type="text" value="${escapeHtml(username)}" autofocus autocomplete="username">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password">
  <input id="kc-login" name="login" type="submit" value="Sign In">
</form>`);
}

// RP-initiated logout: oidc-provider asks for a confirmation; we answer "yes, end the whole SSO
// session" (logout=yes, as Keycloak does for a valid id_token_hint) and submit the form at once.
// Browsers never see a confirmation click; non-browser clients post the form (see keycloak.py).
async function renderLogoutPage(ctx, form) {
  ctx.body = page('Logging out', `${form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>')}
<noscript><button type="submit" form="op.logoutForm" id="kc-logout">Logout</button></noscript>
<script>document.getElementById('op.logoutForm').submit();</script>`);
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------------------------
async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res, status, body, headers = {}) {
  const isJson = typeof body !== 'string';
  res.writeHead(status, {
    'content-type': isJson ? 'application/json' : 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(isJson ? JSON.stringify(body) : body);
}

// The login page: password form for the "login" prompt, automatic consent for the rest.
async function handleInteraction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const action = `${prefix}/login-actions/authenticate/${details.uid}`;

  if (details.prompt.name === 'login') {
    if (req.method !== 'POST') {
      send(res, 200, loginPage(action));
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    const user = findUserForLogin(form.get('username'));
    if (!user || !passwordMatches(user, form.get('password'))) {
      send(res, 200, loginPage(action, {
        username: form.get('username') ?? '', error: 'Invalid username or password.',
      }));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, {
      mergeWithLastSubmission: false,
    });
    return;
  }

  // Keycloak does not show a consent screen for first-party clients: grant what was asked for.
  const { prompt: { details: missing }, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

// Keycloak-style userinfo for JWT access tokens (oidc-provider's own endpoint only serves opaque
// tokens without an audience).
async function handleUserinfo(req, res) {
  const refuse = (description) => send(res, 401, { error: 'invalid_token', error_description: description }, {
    'www-authenticate': `Bearer realm="${realm}", error="invalid_token", error_description="${description}"`,
  });
  let token = (req.headers.authorization ?? '').match(/^Bearer\s+(\S+)$/i)?.[1];
  if (!token && req.method === 'POST') {
    token = new URLSearchParams(await readBody(req)).get('access_token');
  }
  if (!token) {
    refuse('Token not provided');
    return;
  }
  let payload;
  try {
    ({ payload } = await jose.jwtVerify(token, verificationKeys, { issuer }));
  } catch {
    refuse('Token verification failed');
    return;
  }
  const issued = issuedAccessTokens.get(payload.jti);
  const user = usersBySub.get(payload.sub);
  if (!issued || !user || !(await provider.Grant.find(issued.grantId))) {
    refuse('User session not found or doesn\'t have client attached on it');
    return;
  }
  send(res, 200, keycloakClaims(user));
}

// What each account holds, so a test can sign a user out everywhere as a Keycloak admin would
// (Users > Sessions > Sign out): her sessions end and every grant (refresh tokens) is revoked.
const sessionsByAccount = new Map();
const grantsByAccount = new Map();
function remember(index, accountId, id) {
  if (!accountId) return;
  if (!index.has(accountId)) index.set(accountId, new Set());
  index.get(accountId).add(id);
}
provider.on('session.saved', (session) => remember(sessionsByAccount, session.accountId, session.jti));
provider.on('grant.saved', (grant) => remember(grantsByAccount, grant.accountId, grant.jti));

async function signOutEverywhere(user) {
  const grants = [...(grantsByAccount.get(user.sub) ?? [])];
  const sessions = [...(sessionsByAccount.get(user.sub) ?? [])];
  await Promise.all(grants.flatMap((grantId) => [
    provider.RefreshToken.revokeByGrantId(grantId),
    provider.AuthorizationCode.revokeByGrantId(grantId),
    provider.Grant.adapter.destroy(grantId),
  ]));
  await Promise.all(sessions.map((id) => provider.Session.adapter.destroy(id)));
  grantsByAccount.delete(user.sub);
  sessionsByAccount.delete(user.sub);
  return { sessions: sessions.length, grants: grants.length };
}

// Test hook: POST /_test/realms/<realm>/users/<username or sub>/logout
async function handleTestHook(req, res, url) {
  const match = url.pathname.match(/^\/_test\/realms\/([^/]+)\/users\/([^/]+)\/logout$/);
  if (!match || req.method !== 'POST' || decodeURIComponent(match[1]) !== realm) {
    send(res, 404, { error: 'unknown test hook' });
    return;
  }
  const who = decodeURIComponent(match[2]);
  const user = usersBySub.get(who) ?? findUserForLogin(who);
  if (!user) {
    send(res, 404, { error: `no user ${who}` });
    return;
  }
  send(res, 200, await signOutEverywhere(user));
}

// Keycloak-style token introspection (RFC 7662) for JWT access tokens and refresh tokens:
// oidc-provider's own endpoint refuses to introspect structured (JWT) access tokens.
function authenticateClient(req, form) {
  let clientId = form.get('client_id');
  let secret = form.get('client_secret');
  const basic = (req.headers.authorization ?? '').match(/^Basic\s+(\S+)$/i)?.[1];
  if (basic) {
    const decoded = Buffer.from(basic, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    clientId = decodeURIComponent(decoded.slice(0, colon));
    secret = decodeURIComponent(decoded.slice(colon + 1));
  }
  return clients.find((client) => client.client_id === clientId && client.client_secret === secret);
}

async function handleIntrospection(req, res) {
  const form = new URLSearchParams(await readBody(req));
  const client = authenticateClient(req, form);
  if (!client) {
    send(res, 401, { error: 'invalid_client', error_description: 'Authentication failed.' });
    return;
  }
  const token = form.get('token') ?? '';
  const inactive = { active: false };
  if (token.split('.').length === 3) {
    try {
      const { payload } = await jose.jwtVerify(token, verificationKeys, { issuer });
      const issued = issuedAccessTokens.get(payload.jti);
      const alive = issued && (await provider.Grant.find(issued.grantId));
      send(res, 200, alive
        ? { ...payload, active: true, client_id: payload.azp, username: payload.preferred_username, token_type: 'Bearer' }
        : inactive);
    } catch {
      send(res, 200, inactive);
    }
    return;
  }
  const refreshToken = await provider.RefreshToken.find(token);
  if (!refreshToken || refreshToken.isExpired || !(await provider.Grant.find(refreshToken.grantId))) {
    send(res, 200, inactive);
    return;
  }
  const user = usersBySub.get(refreshToken.accountId);
  send(res, 200, {
    active: true,
    typ: 'Refresh',
    iss: issuer,
    sub: refreshToken.accountId,
    client_id: refreshToken.clientId,
    azp: refreshToken.clientId,
    scope: refreshToken.scope,
    iat: refreshToken.iat,
    exp: refreshToken.exp,
    ...(user ? { username: user.username.toLowerCase() } : {}),
  });
}

function forgetExpiredAccessTokens() {
  const now = Math.floor(Date.now() / 1000);
  for (const [jti, { exp }] of issuedAccessTokens) {
    if (exp < now) issuedAccessTokens.delete(jti);
  }
}
setInterval(forgetExpiredAccessTokens, 60_000).unref();

const providerCallback = provider.callback();

server.on('request', async (req, res) => {
  const url = new URL(req.url, origin);
  try {
    if (url.pathname === '/health' || url.pathname === `${prefix}/health`) {
      send(res, 200, { status: 'UP' });
    } else if (url.pathname.startsWith('/_test/')) {
      await handleTestHook(req, res, url);
    } else if (url.pathname === `${prefix}/protocol/openid-connect/token/introspect` && req.method === 'POST') {
      await handleIntrospection(req, res);
    } else if (url.pathname === `${prefix}/protocol/openid-connect/userinfo`) {
      await handleUserinfo(req, res);
    } else if (url.pathname.startsWith(`${prefix}/login-actions/authenticate/`)) {
      await handleInteraction(req, res);
    } else if (url.pathname === prefix || url.pathname.startsWith(`${prefix}/`)) {
      // Mount the provider under the realm prefix the way connect does, so that the URLs it
      // builds (discovery, redirects, form actions) carry the prefix.
      req.originalUrl = req.url;
      req.baseUrl = prefix;
      req.url = req.url.slice(prefix.length) || '/';
      providerCallback(req, res);
    } else {
      send(res, 404, { error: 'RESTEASY003210: Could not find resource for full path' });
    }
  } catch (err) {
    if (err instanceof errors.SessionNotFound) {
      send(res, 400, page('We are sorry...', '<p id="kc-error-message">Your login attempt timed out. Login will start from the beginning.</p>'));
      return;
    }
    console.error(err);
    if (!res.headersSent) send(res, 500, { error: 'server_error', error_description: String(err.message) });
  }
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, shutdown);
// The test fixture holds our stdin (a pipe) open; when it goes away (even killed), so do we.
if (fs.fstatSync(0).isFIFO()) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

console.log(JSON.stringify({ ready: true, issuer, port, realm }));
