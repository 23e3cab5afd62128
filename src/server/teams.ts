// The team routes (docs/licenses.md#teams): a team owner's plugin (or website) invites, revokes,
// removes and transfers; a member claims a link (from the plugin, or from the website under the
// login page's CSRF rules) and may leave. Every plugin route is authenticated by the plugin
// session's bearer token and acts for that session's user only: an owner's id is never read from a
// body. Registered by createPluginServer when its `teams` option is given.
import { AuthError, SetupError } from '../core/errors.ts';
import type { PluginAuth } from '../auth.ts';
import type { InviteInput } from '../billing/teams.ts';

export interface TeamRoutesOptions {
  /**
   * The page of your website where a member claims an invitation (default
   * `${website.origin}/team/join`); the claim token is appended as its fragment. The page posts
   * `{ token }` to POST /team/claim (teamClaimPageHtml is one).
   */
  claimUrl?: string;
  /**
   * Delivers an invitation (your email sender): called after the invitation is stored, with the
   * link to send. A throw is answered as an error; the invitation stays (the owner may invite
   * again, which replaces it).
   */
  onInvite?: (invitation: SentInvitation) => Promise<void> | void;
}

export interface SentInvitation {
  invitationId: string;
  ownerId: string;
  email: string | null;
  figmaUserId: string | null;
  /** The claim link, token included: send it to the member only. */
  claimUrl: string | null;
  expiresAt: Date;
}

/** What createPluginServer hands the team routes (its own helpers, so they behave as its other routes do). */
export interface TeamRouteContext {
  auth: Pick<PluginAuth, 'teams' | 'tokens'>;
  add: (method: string, path: string, route: { plugin: boolean; handle: (request: Request) => Promise<Response> }) => void;
  bearer: (request: Request) => Promise<{ userId: string }>;
  readJson: (request: Request) => Promise<Record<string, unknown>>;
  /** The website's origin and session (null: no website configured, no website claim route). */
  website: { origin: string; userId: (request: Request) => Promise<string | null> | string | null } | null;
  /** Refuses a body not sent as application/json (unsupported_media_type). */
  requireJson: (request: Request) => void;
  /** The login confirmation's CSRF rule: Origin (or Sec-Fetch-Site) must be the website's own. */
  refuseCrossSite: (request: Request, origin: string) => void;
}

const json = (body: unknown, status = 200) => Response.json(body, { status });

export function addTeamRoutes(ctx: TeamRouteContext, options: TeamRoutesOptions): void {
  if (typeof options !== 'object' || options === null) throw new SetupError('server_config_invalid', 'server_config_invalid: teams must be an object ({ claimUrl?, onInvite? })');
  if (options.onInvite !== undefined && typeof options.onInvite !== 'function') throw new SetupError('server_config_invalid', 'server_config_invalid: teams.onInvite must be a function');
  let claimUrl: string | null = ctx.website ? `${ctx.website.origin}/team/join` : null;
  if (options.claimUrl !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(options.claimUrl);
    } catch {
      url = null;
    }
    if (!url || !['http:', 'https:'].includes(url.protocol) || url.hash) {
      throw new SetupError('server_config_invalid', 'server_config_invalid: teams.claimUrl must be an http(s) URL without a fragment');
    }
    claimUrl = url.toString();
  }
  const { auth, add, bearer, readJson } = ctx;
  // Ids and tokens from a body go to the library as they came: it checks their type and shape.
  const text = (value: unknown) => value as string;

  add('GET', '/plugin/team', { plugin: true, handle: async (request) => json(await auth.teams.get((await bearer(request)).userId)) });
  add('POST', '/plugin/team/invite', {
    plugin: true,
    handle: async (request) => {
      const { userId } = await bearer(request);
      const { email, figmaUserId, ttlSeconds } = await readJson(request);
      const input = { email, figmaUserId, ttlSeconds } as InviteInput;
      for (const k of ['email', 'figmaUserId', 'ttlSeconds'] as const) if (input[k] === undefined) delete input[k];
      const invitation = await auth.teams.invite(userId, input);
      // The token travels in the fragment, which browsers never send to a server.
      const link = claimUrl ? `${claimUrl}#${invitation.token}` : null;
      if (options.onInvite) {
        await options.onInvite({
          invitationId: invitation.invitationId, ownerId: userId, email: typeof email === 'string' ? email.trim().toLowerCase() : null,
          figmaUserId: typeof figmaUserId === 'string' ? figmaUserId : null, claimUrl: link, expiresAt: invitation.expiresAt,
        });
      }
      return json({ invitationId: invitation.invitationId, token: invitation.token, claimUrl: link, expiresAt: invitation.expiresAt }, 201);
    },
  });
  add('POST', '/plugin/team/invitations/revoke', {
    plugin: true,
    handle: async (request) => {
      const { userId } = await bearer(request);
      const { invitationId } = await readJson(request);
      await auth.teams.revokeInvitation(userId, text(invitationId));
      return json({ revoked: true });
    },
  });
  add('POST', '/plugin/team/remove', {
    plugin: true,
    handle: async (request) => {
      const { userId } = await bearer(request);
      const { memberId } = await readJson(request);
      await auth.teams.remove(userId, text(memberId));
      return json({ removed: true });
    },
  });
  add('POST', '/plugin/team/transfer', {
    plugin: true,
    handle: async (request) => {
      const { userId } = await bearer(request);
      const { newOwnerId } = await readJson(request);
      return json(await auth.teams.transfer(userId, text(newOwnerId)));
    },
  });
  add('POST', '/plugin/team/leave', {
    plugin: true,
    handle: async (request) => json(await auth.teams.leave((await bearer(request)).userId)),
  });
  add('POST', '/plugin/team/claim', {
    plugin: true,
    handle: async (request) => {
      const { userId } = await bearer(request);
      const { token } = await readJson(request);
      return json(await auth.teams.claim(userId, text(token)));
    },
  });
  const website = ctx.website;
  if (website) {
    add('POST', '/team/claim', {
      plugin: false, // website-only: CORS is never opened for it
      handle: async (request) => {
        // The login confirmation's rules: JSON only, from the website's own pages, signed in there.
        ctx.requireJson(request);
        ctx.refuseCrossSite(request, website.origin);
        const userId = await website.userId(request);
        if (!userId) throw new AuthError('not_signed_in', 'not_signed_in: nobody is signed in on the website');
        const { token } = await readJson(request);
        return json(await auth.teams.claim(userId, text(token)));
      },
    });
  }
}
