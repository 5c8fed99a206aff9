package agnhost

import (
	"fmt"

	"github.com/spf13/cobra"
)

// pauseSIGTERMExitCode is the real agnhost pause's exit code on SIGTERM, which the end of ctx stands for.
const pauseSIGTERMExitCode = 2

func newPauseCommand(e *env, code *int) *cobra.Command {
	return &cobra.Command{
		Use:   "pause",
		Short: "Pauses the execution",
		Long:  `Pauses the execution. Useful for keeping the containers running, so other commands can be executed.`,
		Args:  cobra.MaximumNArgs(0),
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(e.stdout, "Paused")
			<-cmd.Context().Done()
			*code = pauseSIGTERMExitCode
		},
	}
}
