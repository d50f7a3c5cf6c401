import type { Logger } from "@sbx/edge";
import { ImageUnavailableError } from "../backend-errors.js";
import { type DockerEngine, dockerUnavailable, statusOf } from "./docker-engine.js";

/** The images sessions run: present, pulled when allowed, and their content ids. */
export class DockerImages {
  constructor(
    private readonly engine: DockerEngine,
    private readonly pull: "if-missing" | "never",
    private readonly log: Logger,
  ) {}

  /** The image is here, or is pulled (unless pulling is off). */
  async ensure(image: string): Promise<void> {
    if ((await this.idOf(image)) !== undefined) return;
    if (this.pull === "never") {
      throw new ImageUnavailableError(image, `image ${image} is not present and pulling is disabled`);
    }
    this.log.info({ image }, "pulling image");
    try {
      const stream = await this.engine.docker.pull(image);
      await new Promise<void>((resolve, reject) => {
        this.engine.docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve()));
      });
    } catch (error) {
      throw new ImageUnavailableError(image, `image ${image} is not present and could not be pulled`, {
        cause: error,
      });
    }
  }

  /** The image's content id as the engine has it now; undefined when it has none of that name. */
  async idOf(image: string): Promise<string | undefined> {
    try {
      return (await this.engine.docker.getImage(image).inspect()).Id;
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw dockerUnavailable(`could not inspect image ${image}`, error);
    }
  }
}
