import { describe, expect, it } from "vitest";
import { ExpiringSet } from "./expiring-set.js";

describe("an expiring set", () => {
  it("refuses a key it holds until the key lapses, and refuses new keys when full rather than forget live ones", () => {
    const set = new ExpiringSet(1000, 2);
    expect(set.add("a", 0)).toBe("added");
    expect(set.add("a", 999)).toBe("seen");
    expect(set.add("b", 10)).toBe("added");
    expect(set.add("c", 20)).toBe("full");
    expect(set.add("a", 1000)).toBe("added");
    expect(set.add("c", 1300)).toBe("added");
  });

  it("takes back kept keys, never for longer than its own lifetime", () => {
    const set = new ExpiringSet(1000, 10);
    set.restore(
      [
        ["old", 50],
        ["far", 10_000_000],
        ["near", 500],
      ],
      100,
    );
    expect(set.live(100)).toEqual([
      ["far", 1100],
      ["near", 500],
    ]);
    expect(set.add("far", 1099)).toBe("seen");
    expect(set.add("far", 1100)).toBe("added");
  });
});
