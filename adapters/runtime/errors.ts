import { CoreError } from '../../core/errors.ts';

/** The image is neither on the node nor pullable; both runtimes throw it (code `image_not_found`). */
/** A tag pulled again (it may have moved) that the registry did not give: the node's copy is not used. */
export class ImageRefreshFailed extends CoreError {
  readonly image: string;
  constructor(image: string, reason: string) {
    super(
      'not_found',
      'image_pull_failed',
      `image ${image} could not be pulled again from its registry: ${reason}; a copy the node may have is not used, since the tag may have moved (deploy by digest to use a known image)`,
      { image },
    );
    this.image = image;
  }
}

export class ImageNotFound extends CoreError {
  readonly image: string;
  constructor(image: string, reason: string) {
    super(
      'not_found',
      'image_not_found',
      `image ${image} not found on node and could not be pulled: ${reason}`,
      {
        image,
      },
    );
    this.image = image;
  }
}

/** A follow or stop asked for a container that does not exist (code `container_not_found`). */
export class ContainerNotFound extends CoreError {
  constructor(nameOrId: string) {
    super('not_found', 'container_not_found', `container ${nameOrId} not found`, {
      container: nameOrId,
    });
  }
}
