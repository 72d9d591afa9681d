/**
 * The dashboard paths a hosted sign-in provider must know: the cloud stack registers them
 * with the Cognito app client, and the composition root builds the URLs it sends from them.
 */
export const dashboardCallbackPath = '/dashboard/auth/callback';
export const dashboardSignedOutPath = '/dashboard/signed-out';
