"""Microsoft APIs over HTTPS: tokens (MSAL or managed identity), the Management Activity API and
Microsoft Graph (message lookup, message trace), with retries, throttling and one error hierarchy."""
