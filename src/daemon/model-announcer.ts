/**
 * When to describe the device again: Home Assistant discovery and the Sparkplug births name
 * the model in force, so they go out again when it changes (an update's switch, a rollback),
 * and not at every OTA report (a probation whose end cannot be saved reports every 30 s).
 */
export interface RunningModel {
  name: string;
  version: string;
}

/** Returns what to call with the model each OTA report names; `announce` runs when it changed. */
export function modelChangeAnnouncer(announcedAtConnect: RunningModel, announce: () => void): (running: RunningModel) => void {
  let announced = `${announcedAtConnect.name} ${announcedAtConnect.version}`;
  return (running) => {
    const now = `${running.name} ${running.version}`;
    if (now === announced) return;
    announced = now;
    announce();
  };
}
