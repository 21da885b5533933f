// The changelog lines `changeset version` writes: those of @changesets/cli/changelog (the changeset's
// commit and summary), except that a package whose dependencies were updated by several changesets
// says so once, naming their commits together, where the default repeats "- Updated dependencies
// [abc1234]" once per changeset (seven identical lines in the CLI's first CHANGELOG).

/** @type {import('@changesets/types').GetReleaseLine} */
const getReleaseLine = async (changeset) => {
  const [firstLine, ...rest] = changeset.summary.split('\n').map((line) => line.trimEnd());
  const commit = changeset.commit ? `${changeset.commit.slice(0, 7)}: ` : '';
  return [`- ${commit}${firstLine}`, ...rest.map((line) => `  ${line}`)].join('\n');
};

/** @type {import('@changesets/types').GetDependencyReleaseLine} */
const getDependencyReleaseLine = async (changesets, dependenciesUpdated) => {
  if (dependenciesUpdated.length === 0) return '';
  const commits = [
    ...new Set(changesets.flatMap((changeset) => (changeset.commit ? [changeset.commit.slice(0, 7)] : []))),
  ];
  return [
    `- Updated dependencies${commits.length > 0 ? ` [${commits.join(', ')}]` : ''}`,
    ...dependenciesUpdated.map((dependency) => `  - ${dependency.name}@${dependency.newVersion}`),
  ].join('\n');
};

module.exports = { default: { getReleaseLine, getDependencyReleaseLine } };
