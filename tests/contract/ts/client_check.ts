// Drives the live server through the client generated from openapi/openapi.json
// (openapi-typescript types + openapi-fetch), compiled with `tsc --strict`: every call
// below must type-check against the spec and answer as the spec says.
import createClient from "openapi-fetch";
import type { paths } from "./api";

const base = process.env.CLOAK_BASE_URL ?? "";
const apiKey = process.env.CLOAK_API_KEY ?? "";
const deviceToken = process.env.CLOAK_DEVICE_TOKEN ?? "";

function check(ok: boolean, what: string): void {
  if (!ok) {
    throw new Error(`contract check failed: ${what}`);
  }
}

async function main(): Promise<void> {
  const tenant = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${apiKey}` } });
  const device = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${deviceToken}` } });

  const external = `ts-${Date.now()}`;
  const created = await tenant.POST("/v1/users", { body: { external_id: external, display_name: "TS client" } });
  check(created.response.status === 201 && created.data?.external_id === external, "create a user");
  const user = created.data!;

  const token = await tenant.POST("/v1/users/{id}/tokens", { params: { path: { id: user.id } } });
  check(token.response.status === 201 && (token.data?.token ?? "").startsWith("cu_"), "mint a user token");

  const invite = await tenant.POST("/v1/invites", { body: { inviter_user_id: user.id } });
  check(invite.response.status === 201 && invite.data !== undefined, "mint an invite");
  const png = await tenant.GET("/v1/invites/{code}/qr.png", {
    params: { path: { code: invite.data!.code } },
    parseAs: "arrayBuffer",
  });
  const bytes = new Uint8Array(png.data ?? new ArrayBuffer(0));
  check(png.response.status === 200 && bytes[0] === 0x89 && bytes[1] === 0x50, "fetch the invite's PNG");

  const wallets = await tenant.GET("/v1/wallets");
  check(wallets.response.status === 200 && Array.isArray(wallets.data?.items), "list wallets");

  const users = await tenant.GET("/v1/users", { params: { query: { limit: 1 } } });
  check(users.response.status === 200 && (users.data?.items.length ?? 0) === 1, "list users");

  // One call grant per hour: the second answers 429 with Retry-After.
  const levels = await tenant.GET("/v1/trust-levels");
  check(levels.response.status === 200 && levels.data !== undefined, "read trust levels");
  const one = { levels: levels.data!.levels.map((l) => ({ ...l, calls_per_hour: 1 })) };
  const put = await tenant.PUT("/v1/trust-levels", { body: one });
  check(put.response.status === 200, "set trust levels");
  const first = await device.POST("/v1/calls/turn-credentials");
  check(first.response.status === 200 && first.data !== undefined && first.data.uris.length > 0, "TURN credentials");
  const second = await device.POST("/v1/calls/turn-credentials");
  const retry = Number(second.response.headers.get("retry-after"));
  check(second.response.status === 429 && second.error?.code === "rate_limited", "a 429 problem");
  check(Number.isInteger(retry) && retry > 0, `Retry-After is a whole number of seconds (${retry})`);
  console.log("typescript client: ok");
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
