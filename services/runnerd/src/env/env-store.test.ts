import { isReservedEnvName } from "@sbx/protocol";
import { describe, expect, it } from "vitest";
import { baseEnvironment, EnvStore } from "./env-store.js";

const identity = { username: "sandbox", homedir: "/home/sandbox", shell: "/bin/bash" };

describe("EnvStore", () => {
  it("sets and unsets names, reporting names only", () => {
    const store = new EnvStore();
    expect(store.patch({ B: "2", A: "1" }, [])).toEqual({ names: ["A", "B"], denied: [] });
    expect(store.patch({}, ["A", "MISSING"])).toEqual({ names: ["B"], denied: [] });
  });

  it("denies runnerd's own configuration and names that would break execs", () => {
    const store = new EnvStore();
    const result = store.patch({ RUNNERD_TOKEN_SHA256: "x", SBX_EXEC: "x", PWD: "/", OK: "1" }, ["RUNNERD_ROOT"]);
    expect(result).toEqual({ names: ["OK"], denied: ["PWD", "RUNNERD_ROOT", "RUNNERD_TOKEN_SHA256", "SBX_EXEC"] });
    expect(isReservedEnvName("RUNNERD_ANYTHING")).toBe(true);
    expect(isReservedEnvName("PATH")).toBe(false);
  });

  it("layers base, store, overlay, then what runnerd sets per exec", () => {
    const store = new EnvStore();
    store.patch({ A: "store", B: "store" }, []);
    const env = store.execEnvironment(
      { A: "base", C: "base" },
      { B: "overlay", PWD: "/evil" },
      {
        cwd: "/workspace/x",
        marker: "m",
      },
    );
    expect(env).toEqual({ A: "store", B: "overlay", C: "base", PWD: "/workspace/x", SBX_EXEC: "m" });
  });
});

describe("baseEnvironment", () => {
  it("inherits only an allow-list from runnerd's own environment", () => {
    const own = {
      PATH: "/custom/bin:/usr/bin",
      TZ: "Europe/Paris",
      RUNNERD_TOKEN_SHA256: "abc",
      AWS_SECRET_ACCESS_KEY: "secret",
      EXTRA: "yes",
    };
    const env = baseEnvironment(own, identity, ["EXTRA", "RUNNERD_ROOT"]);
    expect(env).toEqual({
      PATH: "/custom/bin:/usr/bin",
      TZ: "Europe/Paris",
      LANG: "C.UTF-8",
      HOME: "/home/sandbox",
      USER: "sandbox",
      LOGNAME: "sandbox",
      SHELL: "/bin/bash",
      EXTRA: "yes",
    });
  });
});
