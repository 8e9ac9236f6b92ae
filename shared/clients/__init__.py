"""Microsoft APIs over HTTPS: tokens (MSAL or managed identity), the Management Activity API and
Microsoft Graph (message lookup, message trace), all through one transport (the token, the host
guard, retries, throttling) and one error hierarchy."""
