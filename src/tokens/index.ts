// tokens/: plugin sessions. tokens (issue, verify, list, revoke: a JWT the plugin keeps, stored
// only as its SHA-256 digest), login (the browser hand-over: begin, complete, poll), signer (HS256
// or an asymmetric key pair, with rotation), input (what tokens and login share), figma-identity
// (Sign in with Figma: the user of a verified Figma id).
export { createTokens, type Tokens, type TokenOptions, type IssuedToken, type VerifiedToken, type TokenInfo } from './tokens.ts';
export { type BegunLogin } from './login.ts';
export { type TokenKey } from './signer.ts';
export { createFigmaIdentity, type FigmaIdentity, type FigmaIdentityUser } from './figma-identity.ts';
