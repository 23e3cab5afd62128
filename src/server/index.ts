// server/: the plugin backend's HTTP routes as the library's own (figma-plugin-auth-db/server).
// server.ts builds the handler (routes, CORS, CSRF rules, caps, request ids, logging); body.ts
// reads bodies under a byte cap while they stream; stripe.ts checks Stripe's signature with Web
// Crypto; billing.ts opens Stripe Checkout and the customer portal for the signed-in user; login-page.ts holds the confirmation code and a minimal login page. Edge-safe: no Node
// built-ins, no Buffer, no PGlite; the library is reached through the PluginAuth object passed in.
// figma-oauth.ts is Sign in with Figma (oauth4webapi); supabase.ts verifies Supabase Auth sessions (jose).
export { createPluginServer, type PluginServerOptions, type MeteredRoute, type WebsiteOptions, type LogEntry, type ServerAuth } from './server.ts';
export { FIGMA_OAUTH_SCOPE, type FigmaOAuthOptions } from './figma-oauth.ts';
export { supabaseWebsiteUser, type SupabaseWebsiteUserOptions } from './supabase.ts';
export { confirmationCode, loginPageHtml, CODE_ALPHABET, type LoginPageOptions } from './login-page.ts';
export { verifyStripeSignature, DEFAULT_STRIPE_TOLERANCE_SECONDS } from './stripe.ts';
export type { BillingRouteOptions } from './billing.ts';
export { DEFAULT_LIMITS } from './body.ts';
export { STATUS_BY_CLASS, STATUS_BY_CODE, httpStatusOf, clientOutcome, type ClientOutcome } from '../core/http-status.ts';
